"""Stands in for ``advocate`` in reddit's baseplate 1.5.5 virtualenv (``reddit15_peer_http.py``).

reddit's ``baseplate.clients.requests`` imports ``advocate`` (its address filter) at the top;
the package is not installed in ``.services/reddit-baseplate-1.5`` (its last release pins
urllib3 below 2, which that environment's requests needs). The peer only calls our service on
loopback, which reddit's internal client allows anyway, so the stand-in keeps the interface
and filters nothing. Everything that reaches the wire is reddit's own code.
"""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter


class AddrValidator:
    """Keeps advocate's constructor; allows every address."""

    def __init__(self, **rules: Any) -> None:
        self.rules = rules


class ValidatingHTTPAdapter(HTTPAdapter):
    """An ordinary ``HTTPAdapter`` that takes (and ignores) advocate's ``validator``."""

    def __init__(self, *args: Any, validator: AddrValidator | None = None, **kwargs: Any) -> None:
        self.validator = validator
        super().__init__(*args, **kwargs)
