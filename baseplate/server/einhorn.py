"""Running as a worker of Stripe's Einhorn socket manager (see :mod:`baseplate._einhorn`,
where this lives below the server layer, so that metrics can read the worker index too)."""

from baseplate._einhorn import NotEinhornWorker as NotEinhornWorker
from baseplate._einhorn import ack_startup as ack_startup
from baseplate._einhorn import child_index as child_index
from baseplate._einhorn import get_socket as get_socket
from baseplate._einhorn import get_socket_count as get_socket_count
from baseplate._einhorn import is_worker as is_worker

__all__ = [
    "NotEinhornWorker",
    "ack_startup",
    "child_index",
    "get_socket",
    "get_socket_count",
    "is_worker",
]
