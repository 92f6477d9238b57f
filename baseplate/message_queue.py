"""A gevent-friendly POSIX message queue.

This is a thin wrapper around POSIX message queues (``man 7 mq_overview``) for passing
messages between processes on one host. Waiting for a message (or for room in a full queue)
is done by watching the queue's descriptor with :py:func:`select.poll`, so when gevent has
monkey-patched the process only the waiting greenlet sleeps; without gevent it is a plain
blocking wait.

Run as ``python -m baseplate.message_queue --read /queue`` to log and discard messages, or
``echo hello | python -m baseplate.message_queue --write /queue`` to send some.
"""

from __future__ import annotations

import argparse
import errno
import select
import sys
import time
from collections.abc import Sequence
from typing import Any

import posix_ipc

#: Where Linux exposes the message queue limits that a new queue must fit within.
MQUEUE_LIMITS_DIR = "/proc/sys/fs/mqueue"


class MessageQueueError(Exception):
    """Base exception for message queue related errors."""


class TimedOutError(MessageQueueError):
    """Raised when a message queue operation times out."""

    def __init__(self, name: str = "", timeout: float | None = None) -> None:
        queue = f" {name!r}" if name else ""
        duration = f" after {timeout} seconds" if timeout is not None else ""
        super().__init__(f"Timed out waiting for the message queue{queue}{duration}.")


class InvalidParametersError(MessageQueueError, ValueError):
    """Raised when a queue name, its limits or a message do not fit what the kernel allows.

    It is also a :py:exc:`ValueError`, which is what the underlying library raises for
    the same problems.
    """


def _read_limit(name: str) -> int | None:
    try:
        with open(f"{MQUEUE_LIMITS_DIR}/{name}") as limit_file:
            return int(limit_file.read().strip())
    except (OSError, ValueError):
        return None


def _msgqueue_rlimit() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_MSGQUEUE)
    except (ImportError, AttributeError, OSError, ValueError):
        return None
    return None if soft < 0 else int(soft)


def _explain_limits(name: str, max_messages: int, max_message_size: int) -> str:
    """Describe why the kernel may have refused a queue with these limits."""
    msg_max = _read_limit("msg_max")
    msgsize_max = _read_limit("msgsize_max")
    problems = []
    if msg_max is not None and max_messages > msg_max:
        problems.append(
            f"max_messages={max_messages} is above the kernel limit of {msg_max} "
            f"({MQUEUE_LIMITS_DIR}/msg_max)"
        )
    if msgsize_max is not None and max_message_size > msgsize_max:
        problems.append(
            f"max_message_size={max_message_size} is above the kernel limit of "
            f"{msgsize_max} bytes ({MQUEUE_LIMITS_DIR}/msgsize_max)"
        )
    if max_messages < 1 or max_message_size < 1:
        problems.append("max_messages and max_message_size must both be at least 1")
    if not problems:
        problems.append(
            f"the kernel refused max_messages={max_messages}, "
            f"max_message_size={max_message_size} (limits: msg_max={msg_max}, "
            f"msgsize_max={msgsize_max} in {MQUEUE_LIMITS_DIR})"
        )
    return (
        f"Cannot create message queue {name!r}: "
        + "; ".join(problems)
        + ". A privileged user can raise the limits, e.g. "
        "`sysctl fs.mqueue.msg_max=N fs.mqueue.msgsize_max=N`."
    )


def _explain_descriptor_limit(name: str, max_messages: int, max_message_size: int) -> str:
    rlimit = _msgqueue_rlimit()
    rlimit_text = f"{rlimit} bytes" if rlimit is not None else "unknown"
    return (
        f"Cannot open message queue {name!r}: either the process has too many open files, "
        f"or this user's message queue memory limit (RLIMIT_MSGQUEUE, {rlimit_text}; see "
        f"`ulimit -q`) is used up by existing queues. A queue of max_messages={max_messages} "
        f"and max_message_size={max_message_size} needs about "
        f"{max_messages * max_message_size} bytes of it; unlink unused queues or raise the limit."
    )


def _validate_name(name: str) -> None:
    if (
        not isinstance(name, str)
        or len(name) < 2
        or len(name) > 255
        or not name.startswith("/")
        or "/" in name[1:]
    ):
        raise InvalidParametersError(
            f"Invalid message queue name {name!r}: it must be an initial slash followed by "
            "1 to 254 characters, none of which are slashes (e.g. '/events')."
        )


class MessageQueue:
    """A gevent-friendly (but not required) inter process message queue.

    ``name`` should be a string of up to 255 characters consisting of an initial slash,
    followed by one or more characters, none of which are slashes. The queue is created
    with ``max_messages`` and ``max_message_size`` (bytes) if it does not exist yet; an
    existing queue keeps the limits it was created with.

    Both limits are capped by the kernel (``/proc/sys/fs/mqueue/msg_max`` and
    ``msgsize_max``); values above them raise :py:exc:`InvalidParametersError` naming
    the numbers involved.

    Note: This relies on POSIX message queues being available and select(2)-able like
    other file descriptors. Not all operating systems support this.
    """

    def __init__(self, name: str, max_messages: int, max_message_size: int = 102400) -> None:
        _validate_name(name)
        self.name = name
        try:
            self.queue = posix_ipc.MessageQueue(
                name,
                flags=posix_ipc.O_CREAT,
                mode=0o0644,
                max_messages=max_messages,
                max_message_size=max_message_size,
            )
        except ValueError:
            raise InvalidParametersError(_explain_limits(name, max_messages, max_message_size))
        except posix_ipc.PermissionsError as exc:
            raise MessageQueueError(f"Not permitted to open message queue {name!r}: {exc}")
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOMEM, None):
                raise MessageQueueError(
                    _explain_descriptor_limit(name, max_messages, max_message_size)
                )
            raise MessageQueueError(f"Cannot open message queue {name!r}: {exc}")
        # Operations never block inside the library; waiting happens in poll() so that a
        # monkey-patched gevent hub can run other greenlets meanwhile.
        self.queue.block = False

    @property
    def max_messages(self) -> int:
        """How many messages the queue holds at most (as created, possibly by another process)."""
        return int(self.queue.max_messages)

    @property
    def max_message_size(self) -> int:
        """The largest message, in bytes, that the queue accepts."""
        return int(self.queue.max_message_size)

    def _wait(self, event: int, deadline: float | None, timeout: float | None) -> None:
        """Wait until the queue descriptor reports ``event`` or raise TimedOutError."""
        if deadline is None:
            wait_ms = None
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimedOutError(self.name, timeout)
            wait_ms = max(1, int(remaining * 1000))
        # Looked up on every call so that gevent's monkey-patched poll is picked up even when
        # patching happened after this module was imported.
        poller = select.poll()
        poller.register(self.queue.mqd, event)
        poller.poll(wait_ms)

    def get(self, timeout: float | None = None) -> bytes:
        """Read a message from the queue.

        :param float timeout: If the queue is empty, the call will block up to ``timeout``
            seconds or forever if ``None``.
        :raises: :py:exc:`TimedOutError` The queue was empty for the allowed duration of
            the call.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                message, _priority = self.queue.receive()
                return message
            except posix_ipc.SignalError:
                continue
            except posix_ipc.BusyError:
                self._wait(select.POLLIN, deadline, timeout)

    def put(self, message: bytes | str, timeout: float | None = None) -> None:
        """Add a message to the queue.

        :param float timeout: If the queue is full, the call will block up to ``timeout``
            seconds or forever if ``None``.
        :raises: :py:exc:`TimedOutError` The queue was full for the allowed duration of
            the call.
        :raises: :py:exc:`InvalidParametersError` The message is larger than the queue's
            ``max_message_size``.
        """
        size = len(message.encode() if isinstance(message, str) else message)
        if size > self.max_message_size:
            raise InvalidParametersError(
                f"Message of {size} bytes is too large for message queue {self.name!r}, "
                f"which accepts at most {self.max_message_size} bytes per message."
            )
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self.queue.send(message)
                return
            except posix_ipc.SignalError:
                continue
            except posix_ipc.BusyError:
                self._wait(select.POLLOUT, deadline, timeout)

    def unlink(self) -> None:
        """Remove the queue from the system.

        The queue will not leave until the last active user closes it.
        """
        self.queue.unlink()

    def close(self) -> None:
        """Close the queue, freeing related resources.

        This must be called explicitly if queues are created/destroyed on the fly. It is not
        automatically called when the object is reclaimed by Python.
        """
        self.queue.close()

    def __enter__(self) -> MessageQueue:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m baseplate.message_queue",
        description="Read, write or create a POSIX message queue.",
    )
    parser.add_argument("queue_name", help="the name of the queue, e.g. /events-production")
    parser.add_argument(
        "--max-messages",
        type=int,
        default=10,
        help="if creating the queue, the maximum number of messages it holds (default 10)",
    )
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=8192,
        help="if creating the queue, the maximum size of a message in bytes (default 8192)",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--create",
        action="store_const",
        dest="mode",
        const="create",
        help="create the named queue if it doesn't exist and exit",
    )
    mode.add_argument(
        "--read",
        action="store_const",
        dest="mode",
        const="read",
        help="read, log, and discard messages from the named queue",
    )
    mode.add_argument(
        "--write",
        action="store_const",
        dest="mode",
        const="write",
        help="read lines from stdin and write each one to the named queue as a message",
    )
    return parser


def queue_tool(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool; return the process exit status."""
    args = _make_parser().parse_args(argv)
    try:
        queue = MessageQueue(args.queue_name, args.max_messages, args.max_message_size)
    except MessageQueueError as exc:
        print(exc, file=sys.stderr)
        return 1

    try:
        if args.mode == "read":
            out = sys.stdout.buffer
            while True:
                out.write(queue.get() + b"\n")
                out.flush()
        elif args.mode == "write":
            for line in sys.stdin.buffer:
                queue.put(line.rstrip(b"\n"))
    except KeyboardInterrupt:
        pass
    except MessageQueueError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        queue.close()
    return 0


if __name__ == "__main__":
    sys.exit(queue_tool())
