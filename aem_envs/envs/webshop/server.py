"""Serving the shop over real HTTP on localhost (werkzeug's WSGI server in a thread)."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
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
