"""A WSGI app whose dependencies Poetry installed from poetry.lock; the page names the Python it runs on."""

import platform

import attrs


@attrs.frozen
class Page:
    python: str

    def text(self) -> str:
        return f"poetry app on python {self.python}, attrs {attrs.__version__}\n"


def app(environ, start_response):
    body = Page(platform.python_version()).text().encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
