"""A WSGI app that keeps data in its backing services: rows in DATABASE_URL (Postgres), a counter in
REDIS_URL (Redis). GET /write?text=T adds a row and counts; GET / reads both back."""

import os
import urllib.parse

import pg8000.native
import redis

VERSION = "1"


def database():
    url = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    return pg8000.native.Connection(
        url.username,
        password=urllib.parse.unquote(url.password or ""),
        host=url.hostname,
        port=url.port or 5432,
        database=url.path.lstrip("/"),
        timeout=10,
    )


def counter():
    return redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=10)


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    status, body = "200 OK", ""
    try:
        if path == "/health":
            body = "ok"
        elif path == "/write":
            text = urllib.parse.parse_qs(environ.get("QUERY_STRING", "")).get("text", [""])[0]
            parts = []
            if os.environ.get("DATABASE_URL"):
                db = database()
                try:
                    db.run("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, text text NOT NULL)")
                    row = db.run("INSERT INTO notes (text) VALUES (:text) RETURNING id", text=text)
                    parts.append(f"id={row[0][0]}")
                finally:
                    db.close()
            if os.environ.get("REDIS_URL"):
                parts.append(f"count={counter().incr('writes')}")
            body = "wrote " + " ".join(parts)
        else:
            parts = [f"datastore v{VERSION}"]
            if os.environ.get("DATABASE_URL"):
                db = database()
                try:
                    exists = db.run("SELECT to_regclass('notes') IS NOT NULL")[0][0]
                    rows = db.run("SELECT text FROM notes ORDER BY id") if exists else []
                finally:
                    db.close()
                parts.append("notes=" + ",".join(r[0] for r in rows))
            if os.environ.get("REDIS_URL"):
                parts.append(f"count={int(counter().get('writes') or 0)}")
            body = " ".join(parts)
    except Exception as exc:  # the test reads the reason
        status, body = "500 Internal Server Error", f"error: {type(exc).__name__}: {exc}"
    data = (body + "\n").encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
