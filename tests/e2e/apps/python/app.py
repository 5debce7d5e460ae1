"""A WSGI app that tells which release, config and container answered."""

import os
import socket

VERSION = "1"


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/health":
        body = b"ok"
    else:
        greeting = os.environ.get("GREETING", "")
        body = f"python v{VERSION} greeting={greeting} host={socket.gethostname()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
