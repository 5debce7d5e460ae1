"""A WSGI app that asks for its Python in runtime.txt; the page names the Python it runs on."""

import platform


def app(environ, start_response):
    body = f"runtime.txt app on python {platform.python_version()}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
