"""A WSGI app whose dependencies Pipenv installed from Pipfile.lock; the page names the Python it runs on."""

import platform

import gunicorn


def app(environ, start_response):
    body = f"pipenv app on python {platform.python_version()}, gunicorn {gunicorn.__version__}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
