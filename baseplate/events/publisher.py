"""The event publisher daemon: sends queued events to the event collector.

Run one per host and queue name::

    python -m baseplate.events.publisher --queue-name something config_file.ini

It reads the section ``[event-publisher:something]`` of the INI file:

``collector.hostname`` (required)
    The event collector's host (and optional ``:port``).
``collector.version``
    The collector API version, ``1`` (default; v1 JSON events, batches are JSON arrays)
    or ``2`` (Thrift JSON events, batches are a Thrift JSON list struct
    ``{"1":{"lst":["rec",N,...]}}``).
``collector.scheme``
    ``https`` (default) or ``http`` (for a local collector in tests).
``key.name``, ``key.secret`` (required)
    The name of the signing key and the key itself, base64 encoded.
``post_timeout``
    How long one POST may take, e.g. ``3 seconds`` (the default) or ``3``.
``retry_backoff``
    The delay before the first retry (default ``2 seconds``); it doubles on each retry.
``max_retry_time``
    How long to keep retrying one batch before dropping it (default ``5 minutes``).
``max_queue_size``
    The number of events the queue holds, if the publisher creates it (default 10000,
    or as many as the kernel's limits allow; at most 65536).
``metrics.namespace``, ``metrics.endpoint``
    Where to send the publisher's own statsd metrics: counters ``sent`` (events
    delivered), ``dropped`` (events given up on), ``error.http``, ``error.io``,
    ``error.invalid`` (queue messages that were not JSON) and the timer ``post``.

The durations are a timespan or a number of seconds, more than zero (``max_retry_time``
may be zero: no retry) and at most a day; a value out of range stops the daemon with one
line naming the key.

Events are taken from the POSIX queue ``/events-<name>`` and batched: a batch is sent
when adding the next event would take its body past 500 KiB, or when its oldest event
is 1 second old. Each batch is POSTed, gzipped, to ``<scheme>://<hostname>/v<version>``
with the headers ``Date``, ``User-Agent``, ``Content-Type: application/json``,
``Content-Encoding: gzip`` and ``X-Signature: key=<key.name>, mac=<hex HMAC-SHA256 of
the uncompressed body>``.

Outcomes: a 2xx response delivers the batch. A 5xx response, a timeout or a connection
error is retried with exponential backoff until ``max_retry_time`` has passed, then the
batch is dropped and logged; meanwhile new events wait in the queue (applications see
``EventQueueFullError`` once it fills). Any other response (4xx) means the collector
rejected the batch: it is logged with the response and dropped at once, without retry.
On SIGTERM or SIGINT the current batch is sent once more and the daemon exits.
"""

from __future__ import annotations

import argparse
import configparser
import email.utils
import gzip
import hashlib
import hmac
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import Any, NamedTuple, Optional, Protocol

import requests

from baseplate import config
from baseplate.events.queue import MAX_QUEUE_SIZE, open_event_queue
from baseplate.message_queue import MessageQueue, MessageQueueError, TimedOutError
from otel_bridge.propagation.headers import USER_AGENT_HEADER

logger = logging.getLogger(__name__)

#: The largest uncompressed batch body, in bytes.
MAX_BATCH_SIZE = 500 * 1024
#: How long, in seconds, an event may wait in a batch for more events.
MAX_BATCH_AGE = 1.0
#: What the publisher calls itself in the User-Agent header.
USER_AGENT = "baseplate-event-publisher/1.0"

# How long one wait on the queue lasts, so that stop requests are noticed promptly.
_QUEUE_POLL_INTERVAL = 0.2


class SerializedBatch(NamedTuple):
    """A batch body ready to send and the number of events in it."""

    item_count: int
    body: bytes


class EventBatch:
    """Events collected into one request body: ``header``, events joined by commas, ``footer``.

    :param max_size: The largest body, in bytes.
    """

    def __init__(self, max_size: int = MAX_BATCH_SIZE) -> None:
        self.max_size = max_size
        self._items: list[bytes] = []
        self._items_size = 0
        self._started: Optional[float] = None

    def header(self, count: int) -> bytes:
        """The bytes before the first event."""
        raise NotImplementedError

    footer = b""

    @property
    def count(self) -> int:
        """How many events the batch holds."""
        return len(self._items)

    @property
    def age(self) -> float:
        """Seconds since the first event was added (0 for an empty batch)."""
        if self._started is None:
            return 0.0
        return time.monotonic() - self._started

    def size_with(self, item: bytes) -> int:
        """The body size, in bytes, if ``item`` were added."""
        count = len(self._items) + 1
        return (
            len(self.header(count)) + self._items_size + len(item) + (count - 1) + len(self.footer)
        )

    def fits(self, item: bytes) -> bool:
        """Whether ``item`` can be added without passing ``max_size``.

        An empty batch takes any item, so that every event can be sent.
        """
        return not self._items or self.size_with(item) <= self.max_size

    def add(self, item: bytes) -> None:
        """Add a serialized event."""
        if self._started is None:
            self._started = time.monotonic()
        self._items.append(item)
        self._items_size += len(item)

    def serialize(self) -> SerializedBatch:
        """Return the request body."""
        body = self.header(self.count) + b",".join(self._items) + self.footer
        return SerializedBatch(item_count=self.count, body=body)

    def reset(self) -> None:
        """Empty the batch."""
        self._items = []
        self._items_size = 0
        self._started = None


class V1Batch(EventBatch):
    """A batch of v1 events: a JSON array."""

    footer = b"]"

    def header(self, count: int) -> bytes:
        """The opening bracket."""
        return b"["


class V2Batch(EventBatch):
    """A batch of v2 events: Thrift JSON of a struct whose field 1 is ``list<Event>``.

    The events arrive already serialized, so the container is written by hand in
    TJSONProtocol's format: ``{"1":{"lst":["rec",<count>,<event>,...]}}``.
    """

    footer = b"]}}"

    def header(self, count: int) -> bytes:
        """The struct and list opening, with the element count."""
        return b'{"1":{"lst":["rec",%d,' % count


BATCH_BY_VERSION: dict[int, type[EventBatch]] = {1: V1Batch, 2: V2Batch}


class MetricsClient(Protocol):
    """The part of :py:class:`baseplate.metrics.Client` the publisher uses."""

    def counter(self, name: str) -> Any: ...

    def timer(self, name: str) -> Any: ...


class _NullCounter:
    def increment(self, delta: float = 1, sample_rate: float = 1.0) -> None:
        pass


class _NullMetrics:
    """Discards metrics when ``metrics.namespace`` is not configured."""

    def counter(self, name: str) -> _NullCounter:
        return _NullCounter()

    @contextmanager
    def _timer(self) -> Iterator[None]:
        yield

    def timer(self, name: str) -> Any:
        return self._timer()


def _scheme(text: str) -> str:
    if text not in ("http", "https"):
        raise ValueError(f"expected 'http' or 'https', got {text!r}")
    return text


def _version(text: str) -> int:
    version = config.Integer(text)
    if version not in BATCH_BY_VERSION:
        raise ValueError(f"expected 1 or 2, got {text!r}")
    return version


#: The largest ``max_queue_size``: Linux's hard ceiling on a POSIX queue's length.
MAX_CONFIG_QUEUE_SIZE = 65536

CONFIG_SPEC: dict[str, Any] = {
    "collector": {
        "hostname": config.String,
        "version": config.Optional(_version, default=1),
        "scheme": config.Optional(_scheme, default="https"),
    },
    "key": {"name": config.String, "secret": config.Base64},
    "post_timeout": config.Optional(config.Seconds(allow_zero=False), default=3.0),
    "retry_backoff": config.Optional(config.Seconds(allow_zero=False), default=2.0),
    "max_retry_time": config.Optional(config.Seconds(), default=300.0),
    "max_queue_size": config.Optional(
        config.IntegerRange(1, MAX_CONFIG_QUEUE_SIZE), default=MAX_QUEUE_SIZE
    ),
    "metrics": {
        "namespace": config.Optional(config.String),
        "endpoint": config.Optional(config.Endpoint),
    },
}


def parse_publisher_config(raw_config: dict[str, str]) -> config.ConfigNamespace:
    """Parse the ``[event-publisher:NAME]`` section's options (see the module docs).

    :raises baseplate.config.ConfigurationError: naming the key that is wrong.
    """
    return config.parse_config(raw_config, CONFIG_SPEC)


def make_metrics_client(cfg: config.ConfigNamespace) -> MetricsClient:
    """Return a statsd client for the ``metrics.*`` options, or one discarding metrics."""
    if not cfg.metrics.namespace:
        return _NullMetrics()
    from baseplate import metrics

    return metrics.make_client(cfg.metrics.namespace, cfg.metrics.endpoint)


def gzip_compress(content: bytes) -> bytes:
    """Compress a batch body for ``Content-Encoding: gzip``."""
    return gzip.compress(content, compresslevel=9)


def sign_payload(key_name: str, secret: bytes, payload: bytes) -> str:
    """Return the ``X-Signature`` header value for an uncompressed body."""
    digest = hmac.new(secret, payload, hashlib.sha256).hexdigest()
    return f"key={key_name}, mac={digest}"


class BatchPublisher:
    """Sends batches to the collector, retrying transient failures.

    :param metrics_client: Where the publisher's metrics go.
    :param cfg: The parsed publisher configuration.
    :param stop: When set, retries stop (the batch being retried is dropped).
    """

    def __init__(
        self,
        metrics_client: MetricsClient,
        cfg: config.ConfigNamespace,
        stop: Optional[threading.Event] = None,
    ) -> None:
        self.metrics = metrics_client
        self.url = f"{cfg.collector.scheme}://{cfg.collector.hostname}/v{cfg.collector.version}"
        self.key_name: str = cfg.key.name
        self.key_secret: bytes = cfg.key.secret
        self.post_timeout: float = cfg.post_timeout
        self.retry_backoff: float = cfg.retry_backoff
        self.max_retry_time: float = cfg.max_retry_time
        self.stop = stop or threading.Event()
        self.session = requests.Session()

    def publish(self, batch: SerializedBatch) -> bool:
        """Send one batch; return whether the collector accepted it.

        Never raises for collector problems: a rejected or undeliverable batch is logged,
        counted as ``dropped`` and ``False`` returned.
        """
        if not batch.item_count:
            return True

        logger.debug("Sending batch of %d events to %s", batch.item_count, self.url)
        compressed = gzip_compress(batch.body)
        headers = {
            "Date": email.utils.formatdate(usegmt=True),
            USER_AGENT_HEADER: USER_AGENT,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
            "X-Signature": sign_payload(self.key_name, self.key_secret, batch.body),
        }

        started = time.monotonic()
        deadline = started + self.max_retry_time
        delay = self.retry_backoff
        while True:
            try:
                with self.metrics.timer("post"):
                    response = self.session.post(
                        self.url, headers=headers, data=compressed, timeout=self.post_timeout
                    )
            except OSError as exc:  # requests' errors are OSErrors too
                self.metrics.counter("error.io").increment()
                logger.warning(
                    "Could not send %d events to %s: %s", batch.item_count, self.url, exc
                )
            else:
                if 200 <= response.status_code < 300:
                    self.metrics.counter("sent").increment(batch.item_count)
                    return True
                self.metrics.counter("error.http").increment()
                if response.status_code < 500:
                    logger.error(
                        "The collector rejected a batch of %d events with HTTP %d, dropping it: %s",
                        batch.item_count,
                        response.status_code,
                        response.text[:1000],
                    )
                    self._drop(batch)
                    return False
                logger.warning(
                    "The collector failed a batch of %d events with HTTP %d; will retry.",
                    batch.item_count,
                    response.status_code,
                )

            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stop.wait(min(delay, remaining)):
                logger.error(
                    "Giving up on a batch of %d events after %.1f seconds of failures; "
                    "dropping it.",
                    batch.item_count,
                    time.monotonic() - started,
                )
                self._drop(batch)
                return False
            delay *= 2

    def _drop(self, batch: SerializedBatch) -> None:
        self.metrics.counter("dropped").increment(batch.item_count)


def _is_json(message: bytes) -> bool:
    try:
        json.loads(message)
    except ValueError:
        return False
    return True


def publish_events(
    queue: MessageQueue,
    batch: EventBatch,
    publisher: BatchPublisher,
    stop: threading.Event,
    max_batch_age: float = MAX_BATCH_AGE,
) -> None:
    """Move events from ``queue`` to the collector until ``stop`` is set.

    Messages that are not JSON are logged and skipped, so that one corrupt message
    cannot get a whole batch rejected. When ``stop`` is set, the current batch is sent
    (one attempt) before returning.
    """

    def flush() -> None:
        publisher.publish(batch.serialize())
        batch.reset()

    while not stop.is_set():
        if batch.count:
            wait = min(_QUEUE_POLL_INTERVAL, max(max_batch_age - batch.age, 0.001))
        else:
            wait = _QUEUE_POLL_INTERVAL
        try:
            message: Optional[bytes] = queue.get(timeout=wait)
        except TimedOutError:
            message = None

        if message is not None:
            if not _is_json(message):
                publisher.metrics.counter("error.invalid").increment()
                logger.error("Skipping a queued event that is not JSON: %r", message[:200])
            else:
                if not batch.fits(message):
                    flush()
                batch.add(message)

        if batch.count and batch.age >= max_batch_age:
            flush()

    if batch.count:
        flush()


def _read_section(config_file: Any, queue_name: str) -> dict[str, str]:
    parser = configparser.RawConfigParser()
    parser.read_file(config_file)
    section = "event-publisher:" + queue_name
    if not parser.has_section(section):
        raise configparser.NoSectionError(section)
    return dict(parser.items(section))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the publisher; return the exit status (0 after SIGTERM/SIGINT)."""
    arg_parser = argparse.ArgumentParser(
        prog="python -m baseplate.events.publisher",
        description="Publish events from the local event queue to the event collector.",
    )
    arg_parser.add_argument(
        "config_file", type=argparse.FileType("r"), help="path to a configuration file"
    )
    arg_parser.add_argument(
        "--queue-name",
        default="main",
        help="name of event queue / publisher config (default: main)",
    )
    arg_parser.add_argument(
        "--debug", default=False, action="store_true", help="enable debug logging"
    )
    args = arg_parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO)

    try:
        with args.config_file:
            raw_config = _read_section(args.config_file, args.queue_name)
        cfg = parse_publisher_config(raw_config)
    except (configparser.Error, config.ConfigurationError) as exc:
        print(f"{arg_parser.prog}: error: {args.config_file.name}: {exc}", file=sys.stderr)
        return 2

    try:
        queue = open_event_queue(args.queue_name, max_messages=cfg.max_queue_size)
    except MessageQueueError as exc:
        print(f"{arg_parser.prog}: error: {exc}", file=sys.stderr)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, frame: Optional[FrameType]) -> None:
        logger.info("Received signal %d, sending the current batch and exiting.", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    publisher = BatchPublisher(make_metrics_client(cfg), cfg, stop=stop)
    batch = BATCH_BY_VERSION[cfg.collector.version]()
    logger.info("Publishing events from %s to %s", queue.name, publisher.url)
    publish_events(queue, batch, publisher, stop)
    queue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
