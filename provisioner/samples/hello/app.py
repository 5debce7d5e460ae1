"""The sample app `provisioner demo` deploys: standard library only, so it builds without network."""

import http.server
import os
import signal
import sys


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (
            f"Hello from provisioner! This is {os.environ.get('APP_NAME', 'hello')}, served through nginx.\n"
        )
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt: str, *args: object) -> None:
        sys.stdout.write(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}\n")
        sys.stdout.flush()


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
port = int(os.environ.get("PORT", "5000"))
server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Hello)  # noqa: S104 - in its container, behind nginx
server.serve_forever()
