"""Real HTTP servers on loopback for the HTTP client tests.

:class:`RecordingServer` answers a few paths and records, for every request, its headers and
for every connection the moment it was accepted, so a test can tell that a refused call never
reached it. Used by the unit tests here and by the peer scripts' tests in ``tests/interop``.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        self.server.owner.requests.append(
            {
                "method": self.command,
                "path": parts.path,
                "query": parts.query,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        )
        query = parse_qs(parts.query)
        status = 200
        extra: list[tuple[str, str]] = []
        payload = b'{"ok": true}'
        if parts.path.startswith("/status/"):
            status = int(parts.path.rsplit("/", 1)[1])
            payload = b"status"
        elif parts.path == "/redirect":
            status = 302
            extra.append(("Location", query["to"][0]))
            payload = b""
        elif parts.path == "/cookie":
            extra.append(("Set-Cookie", "session=secret; Path=/"))
        elif parts.path == "/headers":
            payload = json.dumps(self.server.owner.requests[-1]["headers"]).encode()
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _answer


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: RecordingServer

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        with self.owner.accepted:
            self.owner.connections.append(address)
            self.owner.accepted.notify_all()
        return connection, address


class RecordingServer:
    """A threaded HTTP/1.1 server on ``host`` (a loopback address), port chosen by the system.

    ``/status/<code>`` answers that status, ``/redirect?to=<url>`` redirects, ``/cookie``
    sets a cookie, ``/headers`` answers the request headers as JSON, anything else
    ``{"ok": true}``. ``requests`` holds what each request sent, ``connections`` the peer of
    each accepted connection.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[dict[str, Any]] = []
        self.connections: list[Any] = []
        self.accepted = threading.Condition()
        self.server = _Server((host, 0), _Handler)
        self.server.owner = self
        self.host = host
        self.port: int = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def last(self) -> dict[str, Any]:
        """What the last request sent."""
        return self.requests[-1]

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> list[Any]:
        """``connections`` once ``count`` have been accepted (the server accepts in its own
        thread, so a client may be done before the server has seen it), or as they are
        after ``timeout`` seconds."""
        with self.accepted:
            self.accepted.wait_for(lambda: len(self.connections) >= count, timeout)
            return list(self.connections)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """A listening socket that accepts connections and never answers (for read timeouts)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.sock.close()
