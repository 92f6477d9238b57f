"""What the gevent servers share: knowing which connections are mid-request, stopping gracefully.

A connection is *busy* from the moment the first bytes of a request arrive until its response
is written, and *idle* while it waits for the next request (a keep-alive HTTP connection, a
pooled Thrift connection). A graceful stop closes the listener, lets busy connections finish
their request for up to ``stop_timeout`` seconds, then closes every connection that is left:
idle ones at once, busy ones only when the time is up.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent

from baseplate import config

logger = logging.getLogger(__name__)

_POLL_INTERVAL = 0.01

#: Seconds between two log lines about bad input from clients (malformed Thrift frames,
#: unparsable HTTP requests); the lines in between are counted, not written.
BAD_INPUT_LOG_INTERVAL = 60.0
#: The longest reason a bad-input line quotes (the client chose the bytes).
_MAX_REASON = 200


def describe_peer(address: Any) -> str:
    """A client's address as ``host:port`` (``[host]:port`` for IPv6), for log lines."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else "a UNIX socket client"


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, at most a couple of hundred characters."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins" and name[:1].islower():  # struct.error, socket.timeout
        name = f"{kind.__module__}.{name}"
    return shorten(f"{name}: {exc}" if str(exc) else name)


def shorten(text: str) -> str:
    """``text`` on one line, at most a couple of hundred characters (for text a client chose)."""
    text = " ".join(str(text).split())
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


class RequestTracker:
    """Counts a server's requests in progress and says whether the server is stopping."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.stopping = False


class Connection:
    """One client connection's state: busy with a request, or idle."""

    __slots__ = ("busy", "tracker")

    def __init__(self, tracker: RequestTracker) -> None:
        self.tracker = tracker
        self.busy = False

    def begin_request(self) -> None:
        """Mark the connection busy (bytes of a request have arrived)."""
        if not self.busy:
            self.busy = True
            self.tracker.in_flight += 1

    def end_request(self) -> None:
        """Mark the connection idle (its response is written, or it is closing)."""
        if self.busy:
            self.busy = False
            self.tracker.in_flight -= 1


def stop_gracefully(server: Any, tracker: RequestTracker, timeout: float) -> None:
    """Stop a gevent ``server``: stop accepting, wait for requests in progress, close the rest.

    ``server`` is a :class:`gevent.baseserver.BaseServer` whose ``pool`` runs its connections.
    """
    tracker.stopping = True
    server.close()
    deadline = time.monotonic() + max(timeout, 0.0)
    while tracker.in_flight and time.monotonic() < deadline:
        gevent.sleep(_POLL_INTERVAL)
    if tracker.in_flight:
        logger.warning(
            "%d request(s) still in progress after stop_timeout (%gs); closing them",
            tracker.in_flight,
            timeout,
        )
    pool = getattr(server, "pool", None)
    if pool is not None:
        pool.kill(block=True, timeout=1)


class ServerOptions:
    """The options both built-in servers take from their ``[server:NAME]`` section."""

    def __init__(self, max_concurrency: int | None, stop_timeout: float) -> None:
        #: Most connections served at once (None: unlimited).
        self.max_concurrency = max_concurrency
        #: Seconds in-flight requests get to finish when the server stops.
        self.stop_timeout = stop_timeout


#: The most connections a server serves at once that ``max_concurrency`` may ask for.
MAX_CONCURRENCY = 1_000_000
#: The longest ``stop_timeout``: one hour (a stop longer than that is a hung deploy).
MAX_STOP_TIMEOUT = 3600.0


def parse_server_options(server_config: dict[str, str]) -> ServerOptions:
    """Read ``max_concurrency`` (0, the default, for no limit; at most
    :data:`MAX_CONCURRENCY`) and ``stop_timeout`` (seconds, or e.g. ``30 seconds``; default 0,
    at most :data:`MAX_STOP_TIMEOUT`).

    :raises baseplate.config.ConfigurationError: naming the option that is wrong.
    """
    cfg = config.parse_config(
        server_config,
        {
            "max_concurrency": config.Optional(config.IntegerRange(0, MAX_CONCURRENCY), default=0),
            "stop_timeout": config.Optional(config.Seconds(MAX_STOP_TIMEOUT), default=0.0),
        },
    )
    return ServerOptions(cfg.max_concurrency or None, cfg.stop_timeout)
