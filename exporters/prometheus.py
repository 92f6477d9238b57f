"""Metrics for Prometheus to scrape: the OpenTelemetry Prometheus reader behind ``/metrics``.

The only module importing ``opentelemetry-exporter-prometheus`` and ``prometheus_client``
(the ``prometheus`` extra). :class:`PrometheusEndpoint` serves the text exposition format
over HTTP on a port of its own, from a registry of its own (not ``prometheus_client``'s
global one), with a background thread (a greenlet under gevent) answering scrapes. Each
scrape collects the meter provider's cumulative aggregates; nothing is pushed, so nothing
can fail on the request path. The reader carries the process's aggregates
(:class:`exporters.otel_metrics.Aggregates`) with the SDK's own metrics.

OpenTelemetry names become Prometheus names the OpenTelemetry way: dots become underscores,
the unit is appended (``baseplate.span.duration`` in seconds is
``baseplate_span_duration_seconds``), and counters end in ``_total``. Every series carries the
labels ``otel_scope_name`` (``baseplate``) and ``otel_scope_version``; the resource is the
``target_info`` series.

One endpoint serves one process: the aggregates live in that process's memory. A process
forked after its endpoint started does not serve its own metrics (the parent holds the
port); a warning says so in the child.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

logger = logging.getLogger(__name__)

#: Port of the endpoint unless configured (OpenTelemetry's default for Prometheus).
DEFAULT_PROMETHEUS_PORT = 9464
#: Address the endpoint listens on unless configured: every interface, as scrapers are
#: elsewhere.
DEFAULT_PROMETHEUS_HOST = "0.0.0.0"


class PrometheusEndpoint:
    """A Prometheus metric reader and the HTTP server exposing it on ``host:port``.

    :param host: Address to listen on.
    :param port: Port to listen on; 0 picks a free one (see :attr:`port`).
    :raises OSError: the address cannot be listened on (the port is in use, the host does
        not resolve); nothing is left running then.
    """

    def __init__(self, host: str = DEFAULT_PROMETHEUS_HOST, port: int = DEFAULT_PROMETHEUS_PORT):
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        from exporters.otel_metrics import AggregatingReader

        class Reader(AggregatingReader, PrometheusMetricReader):
            """The OpenTelemetry Prometheus reader, carrying the process's aggregates too."""

        self.host = host
        #: What the endpoint serves: a registry of its own, or ``prometheus_client``'s global
        #: one with releases of the OpenTelemetry exporter that take no registry.
        self.registry = CollectorRegistry(auto_describe=False)
        try:
            #: The metric reader to give the meter provider.
            self.reader = Reader(registry=self.registry)
        except TypeError:
            from prometheus_client import REGISTRY

            self.registry = REGISTRY
            self.reader = Reader()
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except BaseException:
            self.reader.shutdown()
            raise
        #: The port the endpoint listens on.
        self.port: int = int(self._server.server_address[1])
        self.pid = os.getpid()
        self._stopped = False
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            reference = weakref.ref(self)

            def after_fork_in_child() -> None:
                endpoint = reference()
                if endpoint is not None and not endpoint._stopped:
                    logger.warning(
                        "this process was forked after its Prometheus endpoint started on "
                        "port %d: its metrics are not served (build the metrics client in "
                        "each worker process, after the fork)",
                        endpoint.port,
                    )

            os.register_at_fork(after_in_child=after_fork_in_child)

    @property
    def url(self) -> str:
        """The URL to scrape (``http://<host>:<port>/metrics``)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and close the port (once)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self.pid != os.getpid():
            return  # the serving thread is the parent's
        server: Any = self._server
        server.shutdown()
        server.server_close()


__all__ = ["DEFAULT_PROMETHEUS_HOST", "DEFAULT_PROMETHEUS_PORT", "PrometheusEndpoint"]
