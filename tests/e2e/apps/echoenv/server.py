import http.server
import os
import signal
import socket
import sys

MARK = "one"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/env/"):
            value = os.environb.get(self.path[5:].encode())
            body = value if value is not None else b""
            self.send_response(200 if value is not None else 404)
        else:
            body = f"echoenv {MARK}\n".encode()
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the access log would be the app's stdout (`logs`)
        sys.stdout.write(f"request {self.path.split('/')[1]}\n")
        sys.stdout.flush()


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6  # bound to [::]: apps that listen on the IPv6 wildcard must work


Server(("::", 8080), Handler).serve_forever()
