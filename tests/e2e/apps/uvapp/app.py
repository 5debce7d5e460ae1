"""A WSGI app whose dependencies uv installed from uv.lock; the page names the Python it runs on."""

import platform

import humanize


def app(environ, start_response):
    python = platform.python_version()
    body = f"uv app on python {python}, humanize says {humanize.naturaldelta(60)}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
