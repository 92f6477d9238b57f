"""HTTP to span collectors: endpoint URLs and a small client posting JSON batches.

:func:`collector_url` turns a configured collector endpoint into the URL spans are posted
to; each exporter names its own default path with it (:func:`exporters.zipkin.zipkin_spans_url`,
:func:`exporters.otlp.otlp_traces_url`).

:class:`JsonPoster` uses only the standard library (so it follows gevent's socket
patching), keeps one connection alive between posts, applies a timeout to connecting,
sending and reading, and posts with OpenTelemetry instrumentation suppressed, so that
sending spans makes no spans.
"""

from __future__ import annotations

import http.client
import os
import socket
import threading
import urllib.parse
import weakref

from otel_bridge.context import instrumentation_suppressed
from otel_bridge.propagation.headers import USER_AGENT_HEADER


def collector_url(endpoint: str, default_path: str, collector: str) -> str:
    """Return the URL to post to for a configured collector ``endpoint``.

    ``host:port`` means ``http://host:port``; a URL without a path (or with ``/``) gets
    ``default_path``; a URL with a path is used as given, so collectors mounted elsewhere
    can be reached. Raises :class:`ValueError`, naming the ``collector`` (e.g. "Zipkin"),
    for an empty endpoint, a scheme other than http(s), a missing host or a malformed port.
    """
    endpoint = endpoint.strip()
    if not endpoint:
        raise ValueError(f"empty {collector} endpoint")
    if "://" not in endpoint:
        if "/" in endpoint:  # neither host:port nor a URL (a mistyped scheme: "htp//host")
            raise ValueError(
                f"not a {collector} endpoint: {endpoint!r} (expected host:port or a URL)"
            )
        endpoint = "http://" + endpoint
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"not an http(s) {collector} endpoint: {endpoint!r}")
    _ = parsed.port  # raises ValueError for a malformed port
    if parsed.path in ("", "/"):
        return urllib.parse.urlunsplit(parsed._replace(path=default_path))
    return endpoint


class JsonPoster:
    """POST JSON bodies to one URL over a reused connection.

    :param url: ``http://`` or ``https://`` URL to post to.
    :param timeout: Seconds allowed for each socket operation of a post.
    :param user_agent: ``User-Agent`` header value.
    """

    def __init__(self, url: str, timeout: float, user_agent: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.timeout = timeout
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = parsed.path or "/"
        if parsed.query:
            self._path += "?" + parsed.query
        self._headers = {"Content-Type": "application/json", USER_AGENT_HEADER: user_agent}
        self._connection: http.client.HTTPConnection | None = None
        self._in_flight: http.client.HTTPConnection | None = None
        self._closed = False
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            self_ref = weakref.ref(self)

            def after_fork_in_child() -> None:
                poster = self_ref()
                if poster is not None:
                    poster._forget_parent_connection()

            os.register_at_fork(after_in_child=after_fork_in_child)

    def post(self, body: bytes) -> int:
        """Send ``body`` and return the response status.

        Raises :class:`OSError` (including timeouts) or :class:`http.client.HTTPException`
        when the collector cannot be reached or does not answer in time.
        """
        # Suppressed here, not only in the batch worker: the trace publisher and exporters
        # run by other span processors post through this too.
        with self._lock, instrumentation_suppressed():
            if self._closed:
                raise ConnectionAbortedError(f"poster for {self.url} is closed")
            connection = self._connection
            if connection is None:
                connection = self._connect()
            self._in_flight = connection
            try:
                connection.request("POST", self._path, body=body, headers=self._headers)
                response = connection.getresponse()
                response.read()
            except BaseException:
                connection.close()
                self._connection = None
                raise
            finally:
                self._in_flight = None
            if response.will_close:
                connection.close()
                self._connection = None
            else:
                self._connection = connection
            return response.status

    def close(self) -> None:
        """Close the connection, aborting a post in progress; later posts raise.

        Does not wait for a post in progress (it may be stuck on a hanging collector): its
        socket is shut down, which makes that post fail at once.
        """
        self._closed = True
        for connection in (self._in_flight, self._connection):
            if connection is None:
                continue
            sock = connection.sock
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            connection.close()

    def _forget_parent_connection(self) -> None:
        # The child must not talk on the parent's socket, and a lock held by a post in
        # progress at the fork would never be released here.
        self._lock = threading.Lock()
        self._connection = None
        self._in_flight = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
