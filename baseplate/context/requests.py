"""HTTP clients on the context object, where 0.28's other clients live.

The same objects as :mod:`baseplate.clients.requests` (reddit's baseplate 1.x's home for
them); see there.
"""

from __future__ import annotations

from baseplate.clients.requests import (
    AddressNotAllowed,
    AddressPolicy,
    BaseplateHTTPAdapter,
    BaseplateSession,
    ExternalRequestsClient,
    InternalRequestsClient,
    RequestsClient,
    http_adapter_from_config,
)

__all__ = [
    "AddressNotAllowed",
    "AddressPolicy",
    "BaseplateHTTPAdapter",
    "BaseplateSession",
    "ExternalRequestsClient",
    "InternalRequestsClient",
    "RequestsClient",
    "http_adapter_from_config",
]
