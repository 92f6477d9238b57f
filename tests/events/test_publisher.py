"""The event publisher: batches, signatures, retries, and end to end over real queues and HTTP."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from baseplate.config import ConfigurationError
from baseplate.events import Event
from baseplate.events.publisher import (
    MAX_BATCH_SIZE,
    BatchPublisher,
    V1Batch,
    V2Batch,
    make_metrics_client,
    parse_publisher_config,
    publish_events,
    sign_payload,
)

from .conftest import Collector, EventQueues, ReceivedRequest

SECRET = b"hunter2"
REPO = Path(__file__).resolve().parents[2]


def raw_config(hostname: str, **extra: str) -> dict[str, str]:
    return {
        "collector.hostname": hostname,
        "collector.scheme": "http",
        "key.name": "TestKey",
        "key.secret": base64.b64encode(SECRET).decode(),
        "retry_backoff": "0.05",
        **extra,
    }


def assert_signed(request: ReceivedRequest) -> bytes:
    """Check the request's signature and encoding; return the uncompressed body."""
    body = request.decompressed
    expected_mac = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature"] == f"key=TestKey, mac={expected_mac}"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("baseplate-event-publisher/")
    assert request.headers["Date"].endswith(" GMT")
    return body


def make_event(number: int) -> Event:
    event = Event("topic", "type")
    event.set_field("number", number)
    return event


@contextmanager
def running_publisher(
    queues: EventQueues,
    config: dict[str, str],
    max_batch_size: int = MAX_BATCH_SIZE,
    max_batch_age: float = 0.2,
) -> Iterator[BatchPublisher]:
    """Run the publisher loop in a thread over the real queue until the block ends.

    Batches are sent after ``max_batch_age`` seconds (shorter than the daemon's 1 second,
    to keep the tests quick).
    """
    cfg = parse_publisher_config(config)
    stop = threading.Event()
    publisher = BatchPublisher(make_metrics_client(cfg), cfg, stop=stop)
    queue = queues.reader()
    batch_type = V1Batch if cfg.collector.version == 1 else V2Batch
    batch = batch_type(max_size=max_batch_size)
    thread = threading.Thread(
        target=publish_events, args=(queue, batch, publisher, stop, max_batch_age)
    )
    thread.start()
    try:
        yield publisher
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()


def test_signature_matches_the_collectors_algorithm() -> None:
    assert sign_payload("TestKey", SECRET, b'[{"example": "value"}]') == (
        "key=TestKey, mac=7c46d56b99cd4cb05e08238c1d4c10a2f330795e9d7327f17cc66fd206bf1179"
    )


def test_v1_batch_is_a_json_array() -> None:
    batch = V1Batch()
    batch.add(b'{"a": 1}')
    batch.add(b'{"b": 2}')

    serialized = batch.serialize()

    assert serialized.item_count == 2
    assert serialized.body == b'[{"a": 1},{"b": 2}]'


def test_v2_batch_is_a_thrift_json_list_struct() -> None:
    batch = V2Batch()
    batch.add(b'{"1":{"str":"a"}}')
    batch.add(b'{"1":{"str":"b"}}')

    assert batch.serialize().body == b'{"1":{"lst":["rec",2,{"1":{"str":"a"}},{"1":{"str":"b"}}]}}'


@pytest.mark.parametrize("batch_type", [V1Batch, V2Batch])
def test_batch_never_exceeds_its_size(batch_type: type[V1Batch]) -> None:
    batch = batch_type(max_size=100)
    item = b'{"k": "' + b"x" * 20 + b'"}'
    added = 0
    while batch.fits(item):
        batch.add(item)
        added += 1

    assert added >= 2
    assert len(batch.serialize().body) <= 100
    assert batch.size_with(item) > 100


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigurationError, match="key.secret"):
        parse_publisher_config({"collector.hostname": "h", "key.name": "k", "key.secret": "!"})
    with pytest.raises(ConfigurationError, match="collector.version"):
        parse_publisher_config(raw_config("h", **{"collector.version": "3"}))
    with pytest.raises(ConfigurationError, match="collector.scheme"):
        parse_publisher_config(raw_config("h", **{"collector.scheme": "ftp"}))


def test_events_arrive_signed_and_compressed(queues: EventQueues, collector: Collector) -> None:
    queue = queues.event_queue()
    events = [make_event(i) for i in range(3)]
    for event in events:
        queue.put(event)

    with running_publisher(queues, raw_config(collector.hostname)):
        (request,) = collector.wait_for_requests(1)

    assert request.path == "/v1"
    body = assert_signed(request)
    assert json.loads(body) == [json.loads(event.serialize()) for event in events]


def test_v2_batches_go_to_v2(queues: EventQueues, collector: Collector) -> None:
    queue = queues.event_queue(event_serializer=lambda event: event)
    queue.put(b'{"1":{"str":"a"}}')

    with running_publisher(queues, raw_config(collector.hostname, **{"collector.version": "2"})):
        (request,) = collector.wait_for_requests(1)

    assert request.path == "/v2"
    assert assert_signed(request) == b'{"1":{"lst":["rec",1,{"1":{"str":"a"}}]}}'


def test_server_errors_are_retried(queues: EventQueues, collector: Collector) -> None:
    collector.statuses = [503, 500]
    queues.event_queue().put(make_event(1))

    with running_publisher(queues, raw_config(collector.hostname)):
        requests = collector.wait_for_requests(3)

    assert [request.body for request in requests] == [requests[0].body] * 3
    assert json.loads(assert_signed(requests[2]))[0]["payload"] == {"number": 1}


def test_rejected_batch_is_dropped_and_later_batches_still_sent(
    queues: EventQueues, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    collector.statuses = [400]
    queue = queues.event_queue()

    with running_publisher(queues, raw_config(collector.hostname)):
        queue.put(make_event(1))
        collector.wait_for_requests(1)
        queue.put(make_event(2))
        requests = collector.wait_for_requests(2)

    assert len(requests) == 2
    assert json.loads(requests[1].decompressed)[0]["payload"] == {"number": 2}
    assert "rejected a batch of 1 events with HTTP 400" in caplog.text


def test_unreachable_collector_drops_the_batch_after_the_retry_budget(
    queues: EventQueues, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="baseplate.events.publisher")
    config = raw_config(f"127.0.0.1:{closed_port}", max_retry_time="0.3")
    queues.event_queue().put(make_event(1))

    with running_publisher(queues, config):
        for _ in range(500):
            if "dropping it" in caplog.text:
                break
            time.sleep(0.02)

    assert "Could not send 1 events" in caplog.text
    assert "Giving up on a batch of 1 events" in caplog.text


def test_batches_split_at_the_size_limit(queues: EventQueues, collector: Collector) -> None:
    queue = queues.event_queue(event_serializer=lambda event: event)
    messages = [json.dumps({"n": i, "pad": "x" * 1880}).encode() for i in range(4)]
    for message in messages:
        queue.put(message)

    # Two 1900-byte events fit a batch of 4000 bytes, a third does not.
    with running_publisher(
        queues, raw_config(collector.hostname), max_batch_size=4000, max_batch_age=1.0
    ):
        requests = collector.wait_for_requests(2)

    assert [len(json.loads(request.decompressed)) for request in requests] == [2, 2]
    assert all(len(request.decompressed) <= 4000 for request in requests)
    received = [item["n"] for request in requests for item in json.loads(request.decompressed)]
    assert received == [0, 1, 2, 3]


def test_non_json_messages_are_skipped(queues: EventQueues, collector: Collector) -> None:
    queue = queues.event_queue(event_serializer=lambda event: event)
    queue.put(b"not json")
    queue.put(b'{"ok": true}')

    with running_publisher(queues, raw_config(collector.hostname)):
        (request,) = collector.wait_for_requests(1)

    assert json.loads(request.decompressed) == [{"ok": True}]


def test_publisher_metrics_go_to_statsd(
    queues: EventQueues, collector: Collector, statsd: socket.socket
) -> None:
    collector.statuses = [502]
    endpoint = f"127.0.0.1:{statsd.getsockname()[1]}"
    config = raw_config(
        collector.hostname, **{"metrics.namespace": "events", "metrics.endpoint": endpoint}
    )
    queues.event_queue().put(make_event(1))

    with running_publisher(queues, config):
        collector.wait_for_requests(2)
        lines: list[bytes] = []
        while b"events.sent:1|c" not in lines:
            lines.extend(statsd.recv(65536).split(b"\n"))

    assert b"events.error.http:1|c" in lines
    assert any(line.startswith(b"events.post:") and line.endswith(b"|ms") for line in lines)


def write_config(tmp_path: Path, queue_name: str, options: dict[str, str]) -> Path:
    path = tmp_path / "publisher.ini"
    lines = [f"[event-publisher:{queue_name}]"] + [f"{k} = {v}" for k, v in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "baseplate.events.publisher", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_command_line_publisher_end_to_end(
    tmp_path: Path, queues: EventQueues, collector: Collector
) -> None:
    config_path = write_config(tmp_path, queues.name, raw_config(collector.hostname))
    process = run_cli("--queue-name", queues.name, str(config_path))
    try:
        queue = queues.event_queue()
        queue.put(make_event(7))
        (request,) = collector.wait_for_requests(1)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)

    assert process.returncode == 0, stderr
    assert json.loads(assert_signed(request))[0]["payload"] == {"number": 7}


def test_command_line_reports_a_missing_section(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, "other", raw_config("h"))
    process = run_cli("--queue-name", "absent", str(config_path))
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 2
    assert "event-publisher:absent" in stderr


def test_command_line_reports_a_bad_key(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, "q", {**raw_config("h"), "key.secret": "not base64!"})
    process = run_cli("--queue-name", "q", str(config_path))
    _, stderr = process.communicate(timeout=30)

    assert process.returncode == 2
    assert "key.secret" in stderr


def test_gzip_body_round_trips() -> None:
    from baseplate.events.publisher import gzip_compress

    assert gzip.decompress(gzip_compress(b"test")) == b"test"
