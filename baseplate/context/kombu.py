"""Kombu (AMQP) integration: connections and exchanges from config, and a traced producer.

:meth:`KombuProducer.publish` is a client span ``<context attribute>.publish`` that also
writes the trace context into the message headers (the configured formats of
:func:`otel_bridge.propagation.http_propagator`: baseplate's ``X-Trace``/``X-Parent``/
``X-Span``/``X-Sampled``/``X-Flags``, W3C ``traceparent``, B3), so a
:mod:`baseplate.queue_consumer` handling the message continues the trace: its server span
has the publish span's id (baseplate's shared-span model).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import opentelemetry.trace
from kombu import Connection, Exchange
from kombu.pools import Producers

from baseplate import config
from baseplate._span import Span
from baseplate.context import ContextFactory
from baseplate.context._clients import parse_prefixed
from otel_bridge.propagation import http_propagator

logger = logging.getLogger(__name__)


def connection_from_config(
    app_config: Mapping[str, str], prefix: str, **kwargs: Any
) -> Connection:
    """Make a Connection from a configuration dictionary.

    The keys useful to :func:`connection_from_config` should be prefixed, e.g.
    ``amqp.hostname`` etc. The ``prefix`` argument specifies the prefix used to filter keys.
    Each key is mapped to a corresponding keyword argument on the
    :class:`kombu.connection.Connection` constructor. Any keyword arguments given to this
    function will be passed through to the constructor. Keyword arguments take precedence
    over the configuration file.

    Supported keys:

    * ``hostname`` (required): a host name or a URL, e.g.
      ``amqp://guest:guest@localhost:5672``.
    * ``virtual_host``
    """
    options = parse_prefixed(
        app_config,
        prefix,
        {"hostname": config.String, "virtual_host": config.Optional(config.String)},
    )
    kwargs.setdefault("hostname", options.hostname)
    kwargs.setdefault("virtual_host", options.virtual_host)
    return Connection(**kwargs)


def exchange_from_config(app_config: Mapping[str, str], prefix: str, **kwargs: Any) -> Exchange:
    """Make an Exchange from a configuration dictionary.

    The keys useful to :func:`exchange_from_config` should be prefixed, e.g.
    ``amqp.exchange_name`` etc. The ``prefix`` argument specifies the prefix used to filter
    keys. Each key is mapped to a corresponding keyword argument on the
    :class:`kombu.Exchange` constructor. Any keyword arguments given to this function will
    be passed through to the constructor. Keyword arguments take precedence over the
    configuration file.

    Supported keys:

    * ``exchange_name``: the exchange's name (default: the nameless default exchange).
    * ``exchange_type`` (required): e.g. ``direct``, ``topic``, ``fanout`` or ``headers``.
    """
    options = parse_prefixed(
        app_config,
        prefix,
        {
            "exchange_name": config.Optional(config.String),
            "exchange_type": config.String,
        },
    )
    kwargs.setdefault("name", options.exchange_name or "")
    kwargs.setdefault("type", options.exchange_type)
    return Exchange(**kwargs)


def _trace_headers(span: Span) -> dict[str, str]:
    headers: dict[str, str] = {}
    if span.otel_span is None:
        return headers
    try:
        http_propagator().inject(
            headers, context=opentelemetry.trace.set_span_in_context(span.otel_span)
        )
    except Exception:
        # telemetry never fails the publish
        logger.warning("could not add trace headers to a message", exc_info=True)
    return headers


class KombuProducerContextFactory(ContextFactory):
    """KombuProducer context factory.

    This factory will attach a proxy object which acts like a :class:`kombu.Producer` to an
    attribute on the context object. The :meth:`KombuProducer.publish` method will
    automatically record diagnostic information.

    :param connection: A configured connection object.
    :param exchange: A configured exchange object
    :param max_connections: The maximum number of connections.
    """

    def __init__(
        self, connection: Connection, exchange: Exchange, max_connections: int | None = None
    ):
        self.connection = connection
        self.exchange = exchange
        self.producers = Producers(limit=max_connections)

    def make_object_for_context(self, name: str, server_span: Span) -> KombuProducer:
        """Return a :class:`KombuProducer` for this request."""
        return KombuProducer(name, server_span, self.connection, self.exchange, self.producers)


class KombuProducer:
    """Publishes messages to an exchange from a pool of producers; each publish is a span.

    :param name: The context attribute name (the span is ``<name>.publish``).
    :param span: The request's server span.
    :param connection: The connection messages go out on.
    :param exchange: The exchange messages are published to.
    :param producers: A :class:`kombu.pools.Producers` pool group.
    """

    def __init__(
        self,
        name: str,
        span: Span,
        connection: Connection,
        exchange: Exchange,
        producers: Producers,
    ):
        self.name = name
        self.span = span
        self.connection = connection
        self.exchange = exchange
        self.producers = producers

    def publish(self, body: Any, routing_key: str | None = None, **kwargs: Any) -> Any:
        """Publish a message to the routing_key.

        The message goes to the factory's exchange unless an ``exchange`` argument is
        given. The trace context is added to the message headers (existing headers are
        kept; a header the caller set is not overwritten).

        :param body: The message body.
        :param routing_key: The routing key to publish to.

        See the Kombu documentation of ``kombu.Producer.publish`` for other arguments.
        """
        child_span = self.span.make_child(f"{self.name}.publish")
        child_span.set_tag("kind", "producer")
        if routing_key:
            child_span.set_tag("message_bus.destination", routing_key)

        with child_span:
            headers = dict(kwargs.pop("headers", None) or {})
            for key, value in _trace_headers(child_span).items():
                headers.setdefault(key, value)
            producer_pool = self.producers[self.connection]
            with producer_pool.acquire(block=True) as producer:
                kwargs.setdefault("exchange", self.exchange)
                return producer.publish(
                    body=body, routing_key=routing_key, headers=headers, **kwargs
                )


__all__ = [
    "KombuProducer",
    "KombuProducerContextFactory",
    "connection_from_config",
    "exchange_from_config",
]
