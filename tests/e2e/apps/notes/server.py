"""GET /write?text=WORD appends a line to /srv/data/notes.txt; GET / answers with the release mark, the
notes and who wrote them (uid:gid); /health for the health check. Standard library only."""

import http.server
import os
import signal
import sys
import urllib.parse

MARK = "one"
NOTES = "/srv/data/notes.txt"


def notes() -> str:
    try:
        with open(NOTES) as fh:
            return ",".join(fh.read().split())
    except OSError as exc:
        return f"(none: {exc.strerror})"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        status = 200
        if url.path == "/health":
            body = "ok"
        elif url.path == "/write":
            text = urllib.parse.parse_qs(url.query).get("text", [""])[0]
            try:
                with open(NOTES, "a") as fh:
                    fh.write(text + "\n")
                body = f"wrote {text}"
            except OSError as exc:
                status, body = 500, f"cannot write: {exc}"
        else:
            body = f"notes {MARK} uid={os.getuid()}:{os.getgid()} notes={notes()}"
        data = (body + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
