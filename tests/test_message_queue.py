"""Tests for baseplate.message_queue against real POSIX message queues."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import posix_ipc
import pytest

from baseplate.message_queue import (
    InvalidParametersError,
    MessageQueue,
    MessageQueueError,
    TimedOutError,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

# Every user's queues share one RLIMIT_MSGQUEUE budget, so test queues stay small.
SMALL = 64


def unique_name() -> str:
    return f"/bp-test-mq-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = unique_name()
    yield name
    try:
        posix_ipc.unlink_message_queue(name)
    except posix_ipc.ExistentialError:
        pass


@pytest.fixture
def queue(queue_name: str) -> Iterator[MessageQueue]:
    mq = MessageQueue(queue_name, max_messages=2, max_message_size=SMALL)
    yield mq
    mq.close()


def test_put_then_get_round_trip(queue: MessageQueue) -> None:
    queue.put(b"hello")
    queue.put("world")
    assert queue.get(timeout=1) == b"hello"
    assert queue.get(timeout=1) == b"world"


def test_second_handle_shares_the_queue(queue: MessageQueue, queue_name: str) -> None:
    other = MessageQueue(queue_name, max_messages=2, max_message_size=SMALL)
    try:
        queue.put(b"across")
        assert other.get(timeout=1) == b"across"
    finally:
        other.close()


def test_existing_queue_keeps_its_limits(queue: MessageQueue, queue_name: str) -> None:
    other = MessageQueue(queue_name, max_messages=5, max_message_size=SMALL * 2)
    try:
        assert (other.max_messages, other.max_message_size) == (2, SMALL)
    finally:
        other.close()


def test_get_times_out_on_empty_queue(queue: MessageQueue) -> None:
    with pytest.raises(TimedOutError):
        queue.get(timeout=0.05)


def test_get_with_zero_timeout_does_not_wait(queue: MessageQueue) -> None:
    with pytest.raises(TimedOutError):
        queue.get(timeout=0)
    queue.put(b"x")
    assert queue.get(timeout=0) == b"x"


def test_put_times_out_on_full_queue(queue: MessageQueue) -> None:
    queue.put(b"1")
    queue.put(b"2")
    with pytest.raises(TimedOutError) as info:
        queue.put(b"3", timeout=0.05)
    assert isinstance(info.value, MessageQueueError)
    assert queue.get(timeout=0) == b"1"


def test_get_waits_for_a_message_from_another_thread(queue: MessageQueue) -> None:
    threading.Timer(0.05, queue.put, args=(b"late",)).start()
    assert queue.get(timeout=10) == b"late"


def test_blocked_put_completes_when_space_frees(queue: MessageQueue) -> None:
    queue.put(b"1")
    queue.put(b"2")
    threading.Timer(0.05, queue.get).start()
    queue.put(b"3", timeout=10)
    assert queue.get(timeout=1) == b"2"
    assert queue.get(timeout=1) == b"3"


def test_message_too_large_names_the_sizes(queue: MessageQueue, queue_name: str) -> None:
    with pytest.raises(InvalidParametersError) as info:
        queue.put(b"x" * (SMALL + 1))
    message = str(info.value)
    assert str(SMALL + 1) in message and str(SMALL) in message and queue_name in message
    assert isinstance(info.value, ValueError)


def read_limit(name: str) -> int:
    with open(f"/proc/sys/fs/mqueue/{name}") as limit_file:
        return int(limit_file.read())


def test_too_many_messages_explains_the_kernel_limit(queue_name: str) -> None:
    msg_max = read_limit("msg_max")
    with pytest.raises(InvalidParametersError) as info:
        MessageQueue(queue_name, max_messages=msg_max + 1, max_message_size=SMALL)
    message = str(info.value)
    assert f"max_messages={msg_max + 1}" in message
    assert str(msg_max) in message
    assert "/proc/sys/fs/mqueue/msg_max" in message


def test_too_large_message_size_explains_the_kernel_limit(queue_name: str) -> None:
    msgsize_max = read_limit("msgsize_max")
    with pytest.raises(InvalidParametersError) as info:
        MessageQueue(queue_name, max_messages=1, max_message_size=msgsize_max + 1)
    message = str(info.value)
    assert f"max_message_size={msgsize_max + 1}" in message
    assert str(msgsize_max) in message
    assert "/proc/sys/fs/mqueue/msgsize_max" in message


@pytest.mark.parametrize("name", ["no-slash", "/two/slashes", "/", "/" + "x" * 255])
def test_invalid_names_are_rejected(name: str) -> None:
    with pytest.raises(InvalidParametersError) as info:
        MessageQueue(name, max_messages=1, max_message_size=SMALL)
    assert repr(name) in str(info.value)


def test_unlink_removes_the_queue(queue_name: str) -> None:
    mq = MessageQueue(queue_name, max_messages=1, max_message_size=SMALL)
    mq.put(b"gone")
    mq.unlink()
    mq.close()
    fresh = MessageQueue(queue_name, max_messages=1, max_message_size=SMALL)
    try:
        with pytest.raises(TimedOutError):
            fresh.get(timeout=0)
    finally:
        fresh.unlink()
        fresh.close()


GEVENT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import sys
    import gevent
    from baseplate.message_queue import MessageQueue, TimedOutError

    mq = MessageQueue(sys.argv[1], max_messages=1, max_message_size=64)
    ticks = []

    def ticker():
        for _ in range(5):
            ticks.append(1)
            gevent.sleep(0.01)

    def producer():
        # Sent only after the ticker has run while get() waited: proves the hub was free.
        while len(ticks) < 5:
            gevent.sleep(0.01)
        mq.put(b"from-greenlet")

    gevent.spawn(ticker)
    gevent.spawn(producer)
    try:
        message = mq.get(timeout=30)
    except TimedOutError:
        print("timed-out", len(ticks))
    else:
        print(message.decode(), len(ticks))
    mq.unlink()
    mq.close()
    """
)


def test_get_under_gevent_lets_other_greenlets_run(queue_name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_SCRIPT, queue_name],
        capture_output=True,
        text=True,
        timeout=60,
        env=SUBPROCESS_ENV,
        check=True,
    )
    assert result.stdout.split() == ["from-greenlet", "5"]


GEVENT_PUT_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey
    monkey.patch_all()

    import sys
    import gevent
    from baseplate.message_queue import MessageQueue

    mq = MessageQueue(sys.argv[1], max_messages=1, max_message_size=64)
    mq.put(b"first")
    received = []

    def consumer():
        gevent.sleep(0.02)
        received.append(mq.get(timeout=5))

    gevent.spawn(consumer)
    mq.put(b"second", timeout=30)  # the queue is full until the consumer greenlet runs
    print(received[0].decode(), mq.get(timeout=1).decode())
    mq.unlink()
    mq.close()
    """
)


def test_put_under_gevent_lets_other_greenlets_run(queue_name: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_PUT_SCRIPT, queue_name],
        capture_output=True,
        text=True,
        timeout=60,
        env=SUBPROCESS_ENV,
        check=True,
    )
    assert result.stdout.split() == ["first", "second"]


def run_tool(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "baseplate.message_queue", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=SUBPROCESS_ENV,
    )


def test_cli_write_sends_each_line(queue_name: str) -> None:
    result = run_tool(
        "--write",
        queue_name,
        "--max-messages",
        "3",
        "--max-message-size",
        str(SMALL),
        stdin="hello!\nsecond line\n",
    )
    assert result.returncode == 0, result.stderr
    mq = MessageQueue(queue_name, max_messages=3, max_message_size=SMALL)
    try:
        assert mq.max_messages == 3
        assert mq.get(timeout=1) == b"hello!"
        assert mq.get(timeout=1) == b"second line"
    finally:
        mq.close()


def test_cli_read_prints_messages(queue_name: str) -> None:
    mq = MessageQueue(queue_name, max_messages=2, max_message_size=SMALL)
    mq.put(b"one")
    mq.put(b"two")
    mq.close()
    reader = subprocess.Popen(
        [sys.executable, "-m", "baseplate.message_queue", "--read", queue_name],
        stdout=subprocess.PIPE,
        env=SUBPROCESS_ENV,
        text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline() == "one\n"
        assert reader.stdout.readline() == "two\n"
    finally:
        reader.terminate()
        reader.wait(timeout=30)


def test_cli_create_makes_the_queue_and_exits(queue_name: str) -> None:
    result = run_tool(
        "--create", queue_name, "--max-messages", "4", "--max-message-size", str(SMALL)
    )
    assert result.returncode == 0, result.stderr
    existing = posix_ipc.MessageQueue(queue_name)
    try:
        assert (existing.max_messages, existing.max_message_size) == (4, SMALL)
    finally:
        existing.close()


def test_cli_reports_kernel_limits(queue_name: str) -> None:
    too_many = read_limit("msg_max") + 1
    result = run_tool("--create", queue_name, "--max-messages", str(too_many))
    assert result.returncode == 1
    assert f"max_messages={too_many}" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_requires_a_mode() -> None:
    result = run_tool("/whatever")
    assert result.returncode == 2
    assert "--read" in result.stderr
