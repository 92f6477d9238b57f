"""Pyramid integration for Baseplate.

A configuration extension that gives every request routed to a view a server span named
after its route. The request itself is the context object: ``request.trace`` is the server
span and context factories' objects are attributes of the request. ::

    def make_app(app_config):
        configurator = Configurator()
        baseplate = Baseplate()
        baseplate_config = BaseplateConfigurator(baseplate, trust_trace_headers=True)
        configurator.include(baseplate_config.includeme)
        return configurator.make_wsgi_app()

Where the trace comes from, in order: an OpenTelemetry span already current (a vendor WSGI
instrumentation wrapping the app) is joined as the parent, so there is one tree; otherwise,
when ``trust_trace_headers`` is true, the trace headers of the request (baseplate, W3C or B3,
see :mod:`otel_bridge.propagation`) are continued; otherwise a new trace starts. Malformed
headers only start a new trace; they never turn into an error response.

The span starts once the route is known (Pyramid's ``ContextFound``), then
:class:`ServerSpanInitialized` is fired and the request's tags (``http.url``,
``http.method``, ``peer.ipv4``) are set. It ends, tagged with ``http.status_code``, as soon
as the response is made: before response callbacks run and before a streamed body is sent.
An exception raised by a view ends the span with that error even when an exception view
renders the response (HTTP exceptions below 500, such as redirects, are answers, not errors).

When headers are trusted, the bytes of the ``X-Edge-Request`` header (base64) are passed on
by every outbound call the request makes, HTTP and Thrift alike, whether or not this service
reads them, and are kept as ``request.raw_request_context``. With an ``edge_context_factory``
they also become the request's edge context, ``request.request_context`` (an empty one when
the header is absent). The application object gets the configurator's Baseplate as
``app.baseplate``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from pyramid.config import Configurator
from pyramid.events import ApplicationCreated, ContextFound
from pyramid.httpexceptions import HTTPException
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import EXCVIEW, MAIN

from baseplate._span import ServerSpan, TraceInfo, trace_info_from_context
from otel_bridge.context import set_edge_request
from otel_bridge.propagation import http_propagator, wsgi_getter
from otel_bridge.propagation.headers import EDGE_REQUEST_HTTP_HEADER

if TYPE_CHECKING:
    from baseplate.core import Baseplate

logger = logging.getLogger(__name__)

#: The 0.28 name of :data:`otel_bridge.propagation.headers.EDGE_REQUEST_HTTP_HEADER`.
EDGE_REQUEST_HEADER = EDGE_REQUEST_HTTP_HEADER
_EXC_INFO_ATTR = "_baseplate_exc_info"
_SPAN_ATTR = "_baseplate_server_span"
_NOT_AN_ERROR = (None, None, None)


class ServerSpanInitialized:
    """Event that Baseplate fires after creating the ServerSpan for a Request.

    It is emitted before the request is passed to its view. Baseplate initializes the
    server span in response to Pyramid's ``ContextFound`` event, so other ``ContextFound``
    subscribers may or may not have run yet.
    """

    def __init__(self, request: Request):
        self.request = request


def _exception_catching_tween(
    handler: Callable[[Request], Response], registry: Any
) -> Callable[[Request], Response]:
    """Remembers a view's exception before exception views turn it into a response."""

    def tween(request: Request) -> Response:
        try:
            return handler(request)
        except HTTPException as exc:
            if exc.code >= 500:  # redirects and client errors are answers, not failures
                setattr(request, _EXC_INFO_ATTR, sys.exc_info())
            else:
                setattr(request, _EXC_INFO_ATTR, _NOT_AN_ERROR)
            raise
        except BaseException:
            setattr(request, _EXC_INFO_ATTR, sys.exc_info())
            raise

    return tween


def _span_ending_tween(
    handler: Callable[[Request], Response], registry: Any
) -> Callable[[Request], Response]:
    """Ends the server span once the response is made (above the exception views)."""

    def tween(request: Request) -> Response:
        try:
            response = handler(request)
        except BaseException as exc:
            span: ServerSpan | None = getattr(request, _SPAN_ATTR, None)
            if span is not None:
                span.finish(exc_info=(type(exc), exc, exc.__traceback__))
            raise
        _tag_status(request, response)
        _finish_span(request)
        return response

    return tween


class BaseplateConfigurator:
    """Config extension to integrate Baseplate into Pyramid.

    :param baseplate: The Baseplate instance for your application.
    :param trust_trace_headers: Should this application trust trace headers from the
        client? If True, trace headers in inbound requests are used for the server span;
        if False, new random trace ids are generated for each request. Do not set it unless
        the application is only reachable by trusted sources (backend-only services).
    :param edge_context_factory: A configured
        :class:`baseplate.core.EdgeRequestContextFactory` that turns a trusted
        ``X-Edge-Request`` header into the request's edge context.
    """

    def __init__(
        self,
        baseplate: Baseplate,
        trust_trace_headers: bool = False,
        edge_context_factory: Any = None,
    ):
        self.baseplate = baseplate
        self.trust_trace_headers = trust_trace_headers
        self.edge_context_factory = edge_context_factory

    def _trace_info(self, request: Request) -> TraceInfo | None:
        if trace.get_current_span().get_span_context().is_valid:
            return None  # join the vendor span that wraps this app
        if self.trust_trace_headers:
            ctx = http_propagator().extract(request.environ, getter=wsgi_getter)
            info = trace_info_from_context(ctx)
            if info is not None:
                return info
        return TraceInfo.new()

    def _on_context_found(self, event: ContextFound) -> None:
        request = event.request
        route = request.matched_route
        if route is None:
            return
        span = self.baseplate.make_server_span(request, route.name, self._trace_info(request))
        setattr(request, _SPAN_ATTR, span)
        span.start()
        # After start: the edge context then lives exactly as long as the server span.
        if self.trust_trace_headers:
            self._attach_edge_context(request)
        # A safety net: the span normally ends in _span_ending_tween (a second finish is a
        # no-op), but a request that bypasses the tweens still ends it.
        request.add_finished_callback(_finish_span)
        request.registry.notify(ServerSpanInitialized(request))
        span.set_tag("http.url", request.url)
        span.set_tag("http.method", request.method)
        span.set_tag("peer.ipv4", request.remote_addr)

    def _attach_edge_context(self, request: Request) -> None:
        header = request.headers.get(EDGE_REQUEST_HTTP_HEADER)
        raw: bytes | None = None
        if header:
            try:
                raw = base64.b64decode(header, validate=True)
            except (binascii.Error, ValueError) as exc:
                logger.warning("ignoring malformed %s header: %s", EDGE_REQUEST_HTTP_HEADER, exc)
        # Passed on as it came, by every outbound call (the propagators read it from the
        # OpenTelemetry context), even when this service cannot read it: a newer peer's
        # struct, or no factory at all.
        request.raw_request_context = raw
        set_edge_request(raw)
        if self.edge_context_factory is None:
            return
        try:
            edge_context = self.edge_context_factory.from_upstream(raw)
            edge_context.attach_context(request)
        except ValueError as exc:
            logger.warning("ignoring malformed %s header: %s", EDGE_REQUEST_HTTP_HEADER, exc)
        except Exception:
            logger.exception("ignoring %s header that could not be read", EDGE_REQUEST_HTTP_HEADER)

    def _on_application_created(self, event: ApplicationCreated) -> None:
        event.app.baseplate = self.baseplate

    def includeme(self, config: Configurator) -> None:
        """Hook Baseplate into a Pyramid configurator (``config.include(...)``)."""
        config.add_subscriber(self._on_context_found, ContextFound)
        config.add_subscriber(self._on_application_created, ApplicationCreated)
        # The outer tween wraps the exception views, so the span ends with the response they
        # render; the inner one sees the view's own exception before they turn it into one.
        config.add_tween("baseplate.integration.pyramid._span_ending_tween", over=EXCVIEW)
        config.add_tween("baseplate.integration.pyramid._exception_catching_tween", over=MAIN)


def _tag_status(request: Request, response: Response) -> None:
    span: ServerSpan | None = getattr(request, _SPAN_ATTR, None)
    if span is not None:
        span.set_tag("http.status_code", response.status_code)


def _finish_span(request: Request) -> None:
    span: ServerSpan | None = getattr(request, _SPAN_ATTR, None)
    if span is None:
        return
    exc_info = getattr(request, _EXC_INFO_ATTR, None)
    if exc_info is None:
        exc_info = getattr(request, "exc_info", None)
    span.finish(exc_info=exc_info if exc_info and exc_info[1] is not None else None)


__all__ = ["BaseplateConfigurator", "ServerSpanInitialized"]
