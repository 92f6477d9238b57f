"""Running as a worker of Stripe's Einhorn socket manager.

Einhorn binds the listening sockets itself and hands them to each worker it starts, describing
them in the environment:

* ``EINHORN_FD_COUNT``: how many sockets were bound;
* ``EINHORN_FD_<i>``: the file descriptor of socket ``i``;
* ``EINHORN_FD_FAMILY_<i>``: its address family (``AF_INET`` when absent, as older Einhorn
  releases do not set it);
* ``EINHORN_SOCK_PATH``: the master's command socket, where a worker in "manual ACK" mode
  (``einhorn -m manual``) reports ``{"command":"worker:ack","pid":<pid>}`` once it is ready.

Einhorn also sets ``EINHORN_MASTER_PID``; when it is present it must name this process's
parent, so that processes started by a worker (which inherit its environment) do not take
themselves for workers. Only the first socket (``EINHORN_FD_0``) is served.
"""

from __future__ import annotations

import json
import os
import socket


class NotEinhornWorker(Exception):
    """Raised when an Einhorn-only operation is used outside an Einhorn worker."""


def is_worker() -> bool:
    """Whether this process is a worker started by an Einhorn master.

    With ``EINHORN_MASTER_PID`` set, a worker is a child of that process; without it, a
    process given Einhorn sockets or a command socket is taken for a worker.
    """
    master_pid = os.environ.get("EINHORN_MASTER_PID")
    if master_pid is not None:
        try:
            return int(master_pid) == os.getppid()
        except ValueError:
            return False
    return "EINHORN_FD_COUNT" in os.environ or "EINHORN_SOCK_PATH" in os.environ


def child_index() -> int | None:
    """The index Einhorn gave this worker (``EINHORN_CHILD_INDEX``: no two live workers share
    one), or None outside an Einhorn worker or when the variable is malformed."""
    if not is_worker():
        return None
    raw = os.environ.get("EINHORN_CHILD_INDEX", "").strip()
    return int(raw) if raw.isdigit() else None


def get_socket_count() -> int:
    """How many sockets Einhorn bound for this worker."""
    if not is_worker():
        raise NotEinhornWorker("not running as an Einhorn worker")
    raw = os.environ.get("EINHORN_FD_COUNT", "0")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"invalid EINHORN_FD_COUNT {raw!r}: expected an integer")


def get_socket(index: int = 0) -> socket.socket:
    """The listening socket number ``index`` that Einhorn bound for this worker.

    :raises NotEinhornWorker: outside an Einhorn worker.
    :raises IndexError: if Einhorn bound fewer sockets.
    :raises ValueError: if the environment describing the socket is malformed.
    """
    count = get_socket_count()
    if not 0 <= index < count:
        raise IndexError(f"Einhorn bound {count} socket(s); there is no socket {index}")
    fd_name = f"EINHORN_FD_{index}"
    raw_fd = os.environ.get(fd_name)
    try:
        fileno = int(raw_fd or "")
    except ValueError:
        raise ValueError(f"invalid {fd_name} {raw_fd!r}: expected a file descriptor number")
    family_key = f"EINHORN_FD_FAMILY_{index}"
    family_name = os.environ.get(family_key, "AF_INET")
    family = getattr(socket, family_name, None) if family_name.startswith("AF_") else None
    if not isinstance(family, int):
        raise ValueError(f"invalid {family_key} {family_name!r}: expected e.g. AF_INET")
    # fromfd duplicates the descriptor: the inherited one stays open, as Einhorn expects.
    return socket.fromfd(fileno, family, socket.SOCK_STREAM)


def ack_startup() -> None:
    """Tell the Einhorn master that this worker is ready to serve (manual ACK mode)."""
    if not is_worker():
        raise NotEinhornWorker("not running as an Einhorn worker")
    path = os.environ.get("EINHORN_SOCK_PATH")
    if not path:
        raise ValueError("EINHORN_SOCK_PATH is not set: cannot acknowledge startup")
    message = json.dumps({"command": "worker:ack", "pid": os.getpid()}, separators=(",", ":"))
    message += "\n"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
        control.connect(path)
        control.sendall(message.encode("utf-8"))


__all__ = ["NotEinhornWorker", "ack_startup", "get_socket", "get_socket_count", "is_worker"]
