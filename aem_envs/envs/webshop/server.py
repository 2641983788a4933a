"""Ways to send the shop an HTTP request: a real server on localhost (werkzeug's WSGI server in
a thread) with :func:`http_fetch`, or a direct WSGI call with :func:`wsgi_fetch`."""

from __future__ import annotations

import io
import sys
import threading
import urllib.error
import urllib.request
from urllib.parse import unquote_to_bytes
from dataclasses import dataclass, field

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class ShopServer:
    """``app`` served on ``host:port`` (port 0 picks a free one) until :meth:`stop`."""

    app: Flask
    host: str = "127.0.0.1"
    port: int = 0
    _server: BaseWSGIServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> ShopServer:
        if self._server is not None:
            return self
        self._server = make_server(self.host, self.port, self.app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"webshop-{self.port}", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C interrupts the wait)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def stop(self) -> None:
        """Stop serving and free the port. Safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ShopServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def http_fetch(base_url: str, method: str, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """``(status, body)`` of ``method path`` against ``base_url``; HTTP errors are returned, not raised."""
    req = urllib.request.Request(base_url + path, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def wsgi_fetch(app: Flask, method: str, path: str) -> tuple[int, str]:
    """``(status, body)`` of ``method path`` by calling ``app`` as a WSGI callable.

    The environ holds what PEP 3333 requires and nothing else; that is all the shop reads, and
    it skips the test client's request builder and response wrapper.
    """
    route, _, query = path.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(route).decode("latin-1"),  # PEP 3333: decoded, as latin-1
        "QUERY_STRING": query,
        "CONTENT_LENGTH": "0",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    status: list[str] = []

    def start_response(s: str, headers: list, exc_info=None) -> None:
        status.append(s)

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return int(status[0].split(" ", 1)[0]), body.decode("utf-8")
