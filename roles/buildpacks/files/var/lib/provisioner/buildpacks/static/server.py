"""Static file server of the provisioner static buildpack (Python standard library only).

Serves the files under the app directory (default /app, or the first argument) on
0.0.0.0:$PORT (default 5000): a directory serves its index.html, anything else that is
missing, a directory listing, a dot-file or dot-directory (.profile.d, .git, .provisioner, ...)
or a path leading outside the app directory is a 404. Exits cleanly on SIGTERM and SIGINT.
"""

import http.server
import os
import posixpath
import signal
import sys
import threading
import urllib.parse

ROOT = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else "/app")


class Handler(http.server.SimpleHTTPRequestHandler):
    def version_string(self):
        return "provisioner-static"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=ROOT, **kwargs)

    def send_head(self):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path, errors="surrogatepass")
        parts = [p for p in posixpath.normpath(path).split("/") if p]
        if any(p.startswith(".") for p in parts):
            self.send_error(404, "Not Found")
            return None
        target = os.path.realpath(os.path.join(ROOT, *parts))
        if target != ROOT and not target.startswith(ROOT + os.sep):
            self.send_error(404, "Not Found")
            return None
        if os.path.isdir(target):
            if not os.path.isfile(os.path.join(target, "index.html")):
                self.send_error(404, "Not Found")
                return None
        elif not os.path.isfile(target):
            self.send_error(404, "Not Found")
            return None
        return super().send_head()

    def list_directory(self, path):
        self.send_error(404, "Not Found")
        return None

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        sys.stdout.write("%s %s\n" % (self.address_string(), format % args))
        sys.stdout.flush()


def main():
    port = int(os.environ.get("PORT", "5000"))
    httpd = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    httpd.daemon_threads = True

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, so it cannot run in this thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stdout.write("serving %s on 0.0.0.0:%d\n" % (ROOT, port))
    sys.stdout.flush()
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
    sys.stdout.write("stopped\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
