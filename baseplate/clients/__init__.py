"""Instrumented clients, under the name reddit's baseplate 1.x gives them.

:mod:`baseplate.clients.requests` calls other HTTP services with ``requests``. The 0.28
clients (redis, memcache, SQLAlchemy, Thrift ...) live in :mod:`baseplate.context`; both
kinds are context factories given to :meth:`~baseplate.core.Baseplate.add_to_context`.
"""

from __future__ import annotations

from baseplate._span import ContextFactory

__all__ = ["ContextFactory"]
