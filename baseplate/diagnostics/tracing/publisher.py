"""The trace publisher sidecar: read spans from the trace queue and post them to Zipkin.

Run one per host next to services configured with ``tracing.queue_name``::

    python -m baseplate.diagnostics.tracing.publisher CONFIG --queue-name main

It reads the ``[trace-publisher:<queue-name>]`` section of CONFIG:

``zipkin_api_url`` (required)
    Base URL of the Zipkin API, e.g. ``http://zipkin:9411/api/v1``; batches are POSTed to
    ``<zipkin_api_url>/spans``.
``post_timeout`` (default 3)
    Seconds allowed for each network operation of a post.
``max_batch_size`` (default 512000, i.e. 500 KiB)
    Largest request body; a batch is also sent once its oldest span is a second old.
``retry_limit`` (default 10)
    Attempts per batch. Connection errors, timeouts and 5xx answers are retried with
    exponential backoff; a 4xx answer drops the batch at once. A batch still failing after
    the last attempt is dropped (and logged), so a Zipkin outage never stalls the queue.
``metrics.namespace``, ``metrics.endpoint`` (optional)
    Report ``post`` timings and ``sent``, ``error.http`` and ``error.io`` counters to statsd.

Spans are the Zipkin v1 JSON messages written by :class:`exporters.sidecar.SidecarExporter`;
a batch is the JSON array of those messages, unchanged.
"""

from __future__ import annotations

import argparse
import configparser
import logging
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from baseplate import config
from baseplate.retry import RetryPolicy
from exporters.http import JsonPoster
from exporters.sidecar import open_trace_queue

logger = logging.getLogger(__name__)

#: Seconds to wait for Zipkin to answer.
POST_TIMEOUT_DEFAULT = 3
#: Most bytes in one batch of spans.
MAX_BATCH_SIZE_DEFAULT = 500 * 1024
#: Seconds a span may wait for more spans to join its batch.
MAX_BATCH_AGE = 1.0
#: Attempts to post one batch.
RETRY_LIMIT_DEFAULT = 10
#: Base of the exponential backoff between attempts, in seconds.
RETRY_BACKOFF = 0.1

_USER_AGENT = "baseplate-trace-publisher/1.0"


class TraceBatch:
    """Span messages collected into one JSON array of at most ``max_size`` bytes."""

    def __init__(self, max_size: int = MAX_BATCH_SIZE_DEFAULT) -> None:
        self.max_size = max_size
        self._items: list[bytes] = []
        self._size = 2  # the brackets
        self.started: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    def fits(self, message: bytes) -> bool:
        """Whether ``message`` can join without the batch exceeding ``max_size``.

        An empty batch takes any message, so a span larger than a batch still goes out alone.
        """
        if not self._items:
            return True
        return self._size + 1 + len(message) <= self.max_size

    def add(self, message: bytes) -> None:
        """Add one span message."""
        if self._items:
            self._size += 1
        else:
            self.started = time.monotonic()
        self._items.append(message)
        self._size += len(message)

    def is_due(self, max_age: float = MAX_BATCH_AGE) -> bool:
        """Whether the oldest span has waited ``max_age`` seconds."""
        return self.started is not None and time.monotonic() - self.started >= max_age

    def serialize(self) -> bytes:
        """The request body: the messages as one JSON array."""
        return b"[" + b",".join(self._items) + b"]"

    def reset(self) -> None:
        """Empty the batch."""
        self._items = []
        self._size = 2
        self.started = None


class ZipkinPublisher:
    """Post span batches to ``<zipkin_api_url>/spans`` with retries and a timeout."""

    def __init__(
        self,
        zipkin_api_url: str,
        post_timeout: float = POST_TIMEOUT_DEFAULT,
        retry_limit: int = RETRY_LIMIT_DEFAULT,
        retry_backoff: float = RETRY_BACKOFF,
        metrics_client: Any = None,
    ) -> None:
        self.endpoint = zipkin_api_url.rstrip("/") + "/spans"
        self.metrics = metrics_client
        self.retry_limit = retry_limit
        self.retry_backoff = retry_backoff
        self._poster = JsonPoster(self.endpoint, post_timeout, user_agent=_USER_AGENT)
        #: Spans Zipkin accepted.
        self.sent_spans = 0
        #: Spans dropped after a 4xx answer or after the last attempt failed.
        self.dropped_spans = 0
        #: Set when the daemon is stopping: failed posts are not retried any more.
        self.stopping = False

    def publish(self, body: bytes, count: int) -> bool:
        """Post one batch; return whether Zipkin accepted it. Never raises for I/O errors."""
        if not count:
            return True
        logger.info("sending batch of %d spans", count)
        policy = RetryPolicy.new(attempts=self.retry_limit, backoff=self.retry_backoff)
        for attempt, _ in enumerate(policy):
            if attempt and self.stopping:
                break
            try:
                status = self._post(body)
            except Exception as exc:
                self._count("error.io")
                logger.warning("posting spans to %s failed: %r", self.endpoint, exc)
                continue
            if 200 <= status < 300:
                self.sent_spans += count
                self._count("sent", count)
                return True
            self._count("error.http")
            if status < 500:
                logger.error("Zipkin rejected %d spans with HTTP %d; dropped", count, status)
                self.dropped_spans += count
                return False
            logger.warning("Zipkin answered HTTP %d; retrying", status)
        logger.error("dropped %d spans that could not be posted", count)
        self.dropped_spans += count
        return False

    def _post(self, body: bytes) -> int:
        if self.metrics is None:
            return self._poster.post(body)
        with self.metrics.timer("post"):
            return self._poster.post(body)

    def _count(self, name: str, delta: int = 1) -> None:
        if self.metrics is not None:
            try:
                self.metrics.counter(name).increment(delta)
            except Exception:
                pass


def _zipkin_api_url(text: str) -> str:
    url = text.strip()
    if "://" not in url:
        url = "http://" + url
    JsonPoster(url, 1.0, _USER_AGENT)  # validates the URL
    return url


_post_timeout = config.Seconds(max=300.0, allow_zero=False)
_batch_count = config.IntegerRange(1, 100_000)


def parse_publisher_config(raw_config: dict[str, str]) -> config.ConfigNamespace:
    """Parse a ``[trace-publisher:NAME]`` section."""
    return config.parse_config(
        raw_config,
        {
            "zipkin_api_url": _zipkin_api_url,
            "post_timeout": config.Optional(_post_timeout, POST_TIMEOUT_DEFAULT),
            "max_batch_size": config.Optional(_batch_count, MAX_BATCH_SIZE_DEFAULT),
            "retry_limit": config.Optional(_batch_count, RETRY_LIMIT_DEFAULT),
        },
    )


def run(queue: Any, batch: TraceBatch, publisher: ZipkinPublisher) -> None:
    """Move spans from ``queue`` to ``publisher`` until SIGTERM/SIGINT, then send what is left.

    After the signal, a post in progress gets no more retries and the last batch one attempt.
    """
    import posix_ipc

    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        publisher.stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping:
            try:
                message, _ = queue.receive(timeout=0.2)
            except (posix_ipc.BusyError, posix_ipc.SignalError):
                message = None
            if message is not None and not batch.fits(message):
                publisher.publish(batch.serialize(), len(batch))
                batch.reset()
            if message is not None:
                batch.add(message)
            if batch.is_due():
                publisher.publish(batch.serialize(), len(batch))
                batch.reset()
        if len(batch):
            publisher.publish(batch.serialize(), len(batch))
            batch.reset()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def publish_traces(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config_file", type=argparse.FileType("r"), help="configuration file")
    parser.add_argument(
        "--queue-name",
        default="main",
        help="name of the trace queue and of the publisher config section (default: main)",
    )
    parser.add_argument("--debug", action="store_true", help="enable debug logging")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING)

    config_parser = configparser.RawConfigParser()
    with args.config_file:
        config_parser.read_file(args.config_file)
    section = "trace-publisher:" + args.queue_name
    if not config_parser.has_section(section):
        print(f"no [{section}] section in {args.config_file.name}", file=sys.stderr)
        return 2
    try:
        cfg = parse_publisher_config(dict(config_parser.items(section)))
    except config.ConfigurationError as exc:
        print(f"[{section}] {exc}", file=sys.stderr)
        return 2

    raw_section = dict(config_parser.items(section))
    metrics_client = None
    if raw_section.get("metrics.namespace"):
        from baseplate import metrics_client_from_config

        try:
            metrics_client = metrics_client_from_config(raw_section)
        except config.ConfigurationError as exc:
            print(f"[{section}] {exc}", file=sys.stderr)
            return 2

    queue = open_trace_queue(args.queue_name)
    publisher = ZipkinPublisher(
        cfg.zipkin_api_url,
        post_timeout=cfg.post_timeout,
        retry_limit=cfg.retry_limit,
        metrics_client=metrics_client,
    )
    run(queue, TraceBatch(cfg.max_batch_size), publisher)
    return 0


if __name__ == "__main__":
    sys.exit(publish_traces())
