"""Integration with HVAC, a Vault Python client, for advanced Vault features.

See HVAC's documentation for the methods available from its client.

.. note:: The :class:`~baseplate.secrets.SecretsStore` handles the most common use case of
    Vault in a Baseplate application: secure retrieval of secret tokens. This client is only
    necessary when taking advantage of more advanced features of Vault such as the Transit
    backend or Cubbyholes. If these don't sound familiar, check out the secrets store before
    digging in here.

Every HTTP request the client makes to Vault is a client span ``<context attribute>.request``
(metric ``clients.<attribute>.request``) tagged ``http.method``, ``http.url`` and, when
Vault answered, ``http.status_code``. The spans come from the client's adapter, through
which every hvac method talks to Vault. When ``opentelemetry-instrumentation-requests`` is
active too, its span for the same request is suppressed (see
:mod:`baseplate.context._clients`).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import hvac
import requests
from hvac.adapters import JSONAdapter

from baseplate import config
from baseplate._span import Span
from baseplate.context import ContextFactory
from baseplate.context._clients import (
    parse_prefixed,
    vendor_instrumentation_active,
    vendor_suppressed,
)

_VENDOR = ("opentelemetry.instrumentation.requests", "RequestsInstrumentor")

# The span of the Vault request being sent, for the error hook that sees its response.
_request_span: ContextVar[Span | None] = ContextVar("baseplate_vault_request_span", default=None)


def hvac_factory_from_config(
    app_config: Mapping[str, str], secrets_store: Any, prefix: str = "vault."
) -> HvacContextFactory:
    """Make an HVAC client factory from a configuration dictionary.

    The keys useful to :func:`hvac_factory_from_config` should be prefixed, e.g.
    ``vault.timeout``. The ``prefix`` argument specifies the prefix used to filter keys.

    Supported keys:

    * ``timeout``: How long to wait for calls to Vault (a timespan or a number of seconds,
      default ``1 second``); more than zero, at most a day.

    :param app_config: The raw application configuration.
    :param secrets_store: A configured :class:`~baseplate.secrets.SecretsStore` from which
        we can get a Vault authentication token.
    :param prefix: The prefix for configuration keys.
    """
    options = parse_prefixed(
        app_config,
        prefix,
        {
            "timeout": config.Optional(
                config.Duration(allow_zero=False), default=datetime.timedelta(seconds=1)
            )
        },
    )
    return HvacContextFactory(secrets_store, options.timeout)


class HvacContextFactory(ContextFactory):
    """HVAC client context factory.

    This factory will attach a proxy object which acts like an :class:`hvac.Client` to an
    attribute on the context object. All methods that talk to Vault will be automatically
    instrumented for tracing and diagnostic metrics. The Vault URL and token are read from
    the secrets store for each request, so a refreshed token is picked up.

    :param secrets_store: Configured :class:`~baseplate.secrets.SecretsStore` from which
        we can get a Vault authentication token.
    :param timeout: How long to wait for calls to Vault (a timedelta, or seconds).
    """

    def __init__(self, secrets_store: Any, timeout: datetime.timedelta | float):
        if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
            timeout = datetime.timedelta(seconds=timeout)
        if not isinstance(timeout, datetime.timedelta):
            raise TypeError(f"timeout must be a datetime.timedelta, got {timeout!r}")
        self.secrets = secrets_store
        self.timeout = timeout
        self.session = requests.Session()

    def make_object_for_context(self, name: str, server_span: Span) -> InstrumentedHvacClient:
        """Return an hvac client for this request, authenticated with the current token."""
        return InstrumentedHvacClient(
            url=self.secrets.get_vault_url(),
            token=self.secrets.get_vault_token(),
            timeout=self.timeout.total_seconds(),
            session=self.session,
            context_name=name,
            server_span=server_span,
        )


class InstrumentedHvacClient(hvac.Client):
    """An :class:`hvac.Client` whose requests to Vault are client spans."""

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float,
        session: requests.Session,
        context_name: str,
        server_span: Span,
    ):
        self.context_name = context_name
        self.server_span = server_span
        super().__init__(
            url=url,
            token=token,
            timeout=timeout,
            session=session,
            adapter=InstrumentedAdapter,
            context_name=context_name,
            server_span=server_span,
        )


class InstrumentedAdapter(JSONAdapter):
    """hvac's JSON adapter with each request to Vault wrapped in a client span."""

    def __init__(self, *args: Any, context_name: str, server_span: Span, **kwargs: Any):
        self.context_name = context_name
        self.server_span = server_span
        super().__init__(*args, **kwargs)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        """Send a request to Vault inside a client span ``<context_name>.request``."""
        with self.server_span.make_child(f"{self.context_name}.request") as span:
            span.set_tag("http.method", method.upper())
            span.set_tag("http.url", url)
            token = _request_span.set(span)
            try:
                with vendor_suppressed(vendor_instrumentation_active(*_VENDOR)):
                    result = super().request(method, url, *args, **kwargs)
            finally:
                _request_span.reset(token)
            # JSONAdapter returns the decoded body of a 200 and the response otherwise
            status = result.status_code if isinstance(result, requests.Response) else 200
            span.set_tag("http.status_code", status)
            return result

    def _raise_for_error(self, method: str, url: str, response: requests.Response) -> None:
        # hvac turns an error response into an exception here: keep its status on the span
        span = _request_span.get()
        if span is not None:
            span.set_tag("http.status_code", response.status_code)
        super()._raise_for_error(method, url, response)


__all__ = [
    "HvacContextFactory",
    "InstrumentedAdapter",
    "InstrumentedHvacClient",
    "hvac_factory_from_config",
]
