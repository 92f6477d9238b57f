"""Thrift integration for Baseplate.

This module provides an implementation of :class:`TProcessorEventHandler` which integrates
Baseplate's facilities into the Thrift request lifecycle, and :class:`ContextProcessor`, the
processor that runs those hooks around the processors the Apache Thrift compiler generates
(whose own processors have no event-handler hook).

An abbreviated example of it in use::

    def make_processor(app_config):
        baseplate = Baseplate()
        handler = MyHandler()
        processor = ContextProcessor(my_thrift.MyService.Processor(handler))
        event_handler = BaseplateProcessorEventHandler(logger, baseplate)
        processor.setEventHandler(event_handler)
        return processor

Each call then runs inside a server span named after the method. Thrift services trust their
callers: the span continues the trace named by the caller's THeader headers (``Trace``,
``Parent``, ``Span``, ``Sampled``, ``Flags``, the 0.28 aliases ``B3-TraceId``,
``B3-ParentSpanId``, ``B3-SpanId``, ``B3-Sampled``, ``B3-Flags``, or W3C/B3 headers when
those formats are configured). The ``Edge-Request`` header is passed on by every outbound
call the handler makes, HTTP and Thrift alike, and becomes the request's edge context when
an edge context factory is configured. Handler
methods that take one argument more than the IDL declares get the request's context object
first::

    class MyHandler:
        def is_healthy(self, context):
            return True

        def get_thing(self, context, thing_id):
            return context.db.fetch(thing_id)

Exceptions declared in the IDL are answers, not failures: the span ends without error.
Anything else a handler raises is recorded on the span as an error and logged.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from thrift.protocol.TProtocol import TProtocolBase
from thrift.Thrift import TApplicationException, TException, TMessageType, TProcessor, TType
from thrift.transport.TTransport import TTransportException

from baseplate._span import RequestContext, TraceInfo, trace_info_from_context
from otel_bridge.context import set_edge_request
from otel_bridge.propagation import thrift_getter, thrift_propagator
from otel_bridge.propagation.headers import (
    EDGE_REQUEST_THRIFT_HEADER,
    EDGE_REQUEST_THRIFT_HEADER_BYTES,
)

if TYPE_CHECKING:
    from baseplate.core import Baseplate

_log = logging.getLogger(__name__)

#: THeader header carrying the serialised edge request context (the 0.28 name of
#: :data:`otel_bridge.propagation.headers.EDGE_REQUEST_THRIFT_HEADER_BYTES`).
EDGE_REQUEST_HEADER = EDGE_REQUEST_THRIFT_HEADER_BYTES


class TProcessorEventHandler:
    """Hooks a :class:`ContextProcessor` calls around each request.

    Every hook is optional; the defaults do nothing. A hook that raises is logged and
    ignored: instrumentation never fails a request.
    """

    def getHandlerContext(self, fn_name: str, server_context: Any) -> Any:
        """Return the context object for a call of ``fn_name``.

        ``server_context`` is the input protocol, whose ``get_headers()`` (THeader) gives
        the request's headers. The returned object is passed to handler methods that take
        a context, and to the other hooks.
        """
        return None

    def postRead(self, handler_context: Any, fn_name: str, args: tuple[Any, ...]) -> None:
        """Called once the arguments are read, just before the handler method runs."""

    def handlerDone(self, handler_context: Any, fn_name: str, result: Any) -> None:
        """Called after the handler returned and its reply was written."""

    def handlerDeclaredError(
        self, handler_context: Any, fn_name: str, exception: BaseException
    ) -> None:
        """Called after the handler raised an exception declared in the IDL (and that
        reply was written). By default the same as :meth:`handlerDone`."""
        self.handlerDone(handler_context, fn_name, None)

    def handlerError(self, handler_context: Any, fn_name: str, exception: BaseException) -> None:
        """Called when the request failed unexpectedly: the handler raised an undeclared
        exception, or the arguments or the reply could not be read or written."""


class BaseplateProcessorEventHandler(TProcessorEventHandler):
    """Processor event handler for Baseplate.

    :param logger: The logger to use for error and debug logging.
    :param baseplate: The baseplate instance for your application.
    :param edge_context_factory: A configured factory for handling edge request context
        (:class:`baseplate.core.EdgeRequestContextFactory`). With one, every request's
        context has a ``request_context`` (an empty one when the caller sent no
        ``Edge-Request`` header). With or without one, the raw ``Edge-Request`` header is
        kept on the context (``raw_request_context``) and passed on to downstream services.

    The context's ``headers`` are the request's THeader headers, with case-insensitive names.
    """

    def __init__(
        self,
        logger: logging.Logger,
        baseplate: Baseplate,
        edge_context_factory: Any = None,
    ) -> None:
        self.logger = logger
        self.baseplate = baseplate
        self.edge_context_factory = edge_context_factory

    def getHandlerContext(self, fn_name: str, server_context: Any) -> RequestContext:
        """Make the request's context object and its server span (not started yet)."""
        headers = HeaderMap(_headers_of(server_context))
        context = RequestContext()
        context.headers = headers  # type: ignore[attr-defined]

        trace_info: TraceInfo | None = None
        try:
            extracted = thrift_propagator().extract(headers, getter=thrift_getter)
            trace_info = trace_info_from_context(extracted)
        except Exception:
            self.logger.warning("Ignoring unreadable trace headers in %r call", fn_name)

        raw_edge_request = headers.get(EDGE_REQUEST_THRIFT_HEADER_BYTES) or None
        context.raw_request_context = raw_edge_request  # type: ignore[attr-defined]

        self.baseplate.make_server_span(context, name=fn_name, trace_info=trace_info)
        return context

    def postRead(self, handler_context: Any, fn_name: str, args: tuple[Any, ...]) -> None:
        self.logger.debug("Handling: %r", fn_name)
        handler_context.trace.start()
        # After start, as in the other integrations: the header is then forwarded exactly as
        # long as the server span runs. It is passed on as it came, by every outbound call
        # (the propagators read it from the OpenTelemetry context), even when this service
        # cannot read it. Without the header the edge context is an empty one, so
        # ``context.request_context`` is there whenever a factory is configured.
        edge_payload = getattr(handler_context, "raw_request_context", None)
        set_edge_request(edge_payload)
        if self.edge_context_factory is not None:
            try:
                edge_context = self.edge_context_factory.from_upstream(edge_payload)
                edge_context.attach_context(handler_context)
            except Exception:
                self.logger.warning(
                    "Ignoring invalid %s header in %r call",
                    EDGE_REQUEST_THRIFT_HEADER,
                    fn_name,
                    exc_info=True,
                )

    def handlerDone(self, handler_context: Any, fn_name: str, result: Any) -> None:
        handler_context.trace.finish()

    def handlerDeclaredError(
        self, handler_context: Any, fn_name: str, exception: BaseException
    ) -> None:
        span = handler_context.trace
        span.set_tag("thrift.declared_exception", type(exception).__name__)
        span.finish()

    def handlerError(self, handler_context: Any, fn_name: str, exception: BaseException) -> None:
        exc_info = (type(exception), exception, exception.__traceback__)
        handler_context.trace.finish(exc_info=exc_info)
        self.logger.error("Unexpected exception in %r.", fn_name, exc_info=exc_info)


class HeaderMap(MutableMapping[Any, Any]):
    """A request's THeader headers (``context.headers``) with case-insensitive names:
    ``headers[b"trace"]`` finds a ``Trace`` header. Names keep the case they arrived in;
    ``str`` names are looked up as their Latin-1 bytes."""

    def __init__(self, headers: Mapping[Any, Any] | None = None) -> None:
        self._items: dict[bytes, tuple[Any, Any]] = {}
        for key, value in (headers or {}).items():
            self[key] = value

    @staticmethod
    def _fold(key: Any) -> Any:
        if isinstance(key, str):
            key = key.encode("latin-1", "replace")
        return bytes(key).lower() if isinstance(key, (bytes, bytearray)) else key

    def __getitem__(self, key: Any) -> Any:
        try:
            return self._items[self._fold(key)][1]
        except TypeError:
            raise KeyError(key) from None

    def __setitem__(self, key: Any, value: Any) -> None:
        self._items[self._fold(key)] = (key, value)

    def __delitem__(self, key: Any) -> None:
        del self._items[self._fold(key)]

    def __iter__(self) -> Iterator[Any]:
        return (key for key, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"HeaderMap({dict(self.items())!r})"


def _headers_of(server_context: Any) -> Mapping[bytes, bytes]:
    if isinstance(server_context, Mapping):
        return server_context
    for holder in (server_context, getattr(server_context, "trans", None)):
        get_headers = getattr(holder, "get_headers", None)
        if callable(get_headers):
            headers = get_headers()
            return headers if isinstance(headers, Mapping) else {}
    return {}


class _Call:
    """What the processor knows about the request being processed."""

    __slots__ = ("declared", "event_handler", "finished", "handler_context", "name", "started")

    def __init__(
        self,
        name: str,
        event_handler: TProcessorEventHandler,
        handler_context: Any,
        declared: tuple[type, ...],
    ) -> None:
        self.name = name
        self.event_handler = event_handler
        self.handler_context = handler_context
        self.declared = declared
        self.started = False
        self.finished = False

    def start(self, args: tuple[Any, ...]) -> None:
        self.started = True
        _hook(self.event_handler.postRead, self.handler_context, self.name, args)

    def finish(self, result: Any = None, exception: BaseException | None = None) -> None:
        if not self.started:
            self.start(())
        self.finished = True
        if exception is None:
            _hook(self.event_handler.handlerDone, self.handler_context, self.name, result)
        elif isinstance(exception, self.declared):
            _hook(
                self.event_handler.handlerDeclaredError, self.handler_context, self.name, exception
            )
        else:
            _hook(self.event_handler.handlerError, self.handler_context, self.name, exception)


_current_call: ContextVar[_Call | None] = ContextVar("baseplate_thrift_call", default=None)


class ContextProcessor(TProcessor):
    """A processor that gives handlers a context object and runs an event handler's hooks.

    :param processor: A processor generated by the Apache Thrift compiler,
        e.g. ``MyService.Processor(handler)``.

    Set the hooks with :meth:`setEventHandler`. Without an event handler, handlers that take
    a context get a plain :class:`~baseplate.core.RequestContext`.
    """

    def __init__(self, processor: TProcessor) -> None:
        handler = getattr(processor, "_handler", None)
        if handler is None or not isinstance(getattr(processor, "_processMap", None), dict):
            raise TypeError(
                f"{processor!r} is not a processor generated by the Apache Thrift compiler "
                "(expected e.g. MyService.Processor(handler))"
            )
        self.handler = handler
        self._processor = type(processor)(_HandlerProxy(handler))
        self._event_handler: TProcessorEventHandler = TProcessorEventHandler()
        self._declared: dict[str, tuple[type, ...]] = {}

    def setEventHandler(self, event_handler: TProcessorEventHandler) -> None:
        """Use ``event_handler``'s hooks for every request from now on."""
        self._event_handler = event_handler

    def process(self, iprot: TProtocolBase, oprot: TProtocolBase) -> None:
        """Read one request from ``iprot``, run its handler method and reply on ``oprot``."""
        name, _message_type, seqid = iprot.readMessageBegin()
        process_method = self._processor._processMap.get(name)
        if process_method is None:
            iprot.skip(TType.STRUCT)
            iprot.readMessageEnd()
            error = TApplicationException(
                TApplicationException.UNKNOWN_METHOD, f"Unknown function {name}"
            )
            oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
            error.write(oprot)
            oprot.writeMessageEnd()
            oprot.trans.flush()
            return

        event_handler = self._event_handler
        handler_context = _hook(event_handler.getHandlerContext, name, iprot)
        if handler_context is None:
            handler_context = RequestContext()
        call = _Call(name, event_handler, handler_context, self._declared_exceptions(name))
        token = _current_call.set(call)
        try:
            process_method(self._processor, seqid, iprot, oprot)
        except BaseException as exc:
            # the arguments could not be read, or the reply could not be written
            if not call.finished:
                call.finish(exception=exc)
            raise
        finally:
            _current_call.reset(token)
        if not call.finished:  # not with generated processors; keeps the hooks paired
            call.finish()

    def _declared_exceptions(self, name: str) -> tuple[type, ...]:
        declared = self._declared.get(name)
        if declared is None:
            declared = _declared_exceptions(type(self._processor), name)
            self._declared[name] = declared
        return declared


def _hook(hook: Callable[..., Any], *args: Any) -> Any:
    try:
        return hook(*args)
    except Exception:
        _log.exception("Thrift event handler hook %s failed; continuing", hook)
        return None


def _result_struct(processor_cls: type, name: str) -> Any:
    # Methods inherited through `extends` live in the parent service's module.
    for cls in processor_cls.__mro__:
        module = sys.modules.get(cls.__module__)
        result = getattr(module, f"{name}_result", None)
        if result is not None:
            return result
    return None


def _declared_exceptions(processor_cls: type, name: str) -> tuple[type, ...]:
    result = _result_struct(processor_cls, name)
    declared = []
    for field in getattr(result, "thrift_spec", None) or ():
        if not field or field[0] == 0 or field[1] != TType.STRUCT:
            continue
        field_class = field[3][0]
        if isinstance(field_class, type) and issubclass(field_class, TException):
            declared.append(field_class)
    return tuple(declared)


def _wants_context(method: Callable[..., Any], idl_arguments: int) -> bool:
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if len(positional) == idl_arguments + 1:
        return True
    # extra optional parameters: only an explicitly named context counts
    return len(positional) > idl_arguments and positional[0].name == "context"


class _HandlerProxy:
    """Stands in for the handler inside the generated processor.

    It passes the context to handler methods that take one, tells the processor how the
    handler finished, and turns a transport error raised by the handler itself (a failed
    downstream call) into an internal-error reply: the generated code would otherwise drop
    the caller's connection as if the caller's own transport had failed.
    """

    def __init__(self, handler: Any) -> None:
        self._handler = handler
        self._wants_context: dict[str, bool] = {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._handler, name)
        if not callable(method):
            return method

        def call(*args: Any) -> Any:
            current = _current_call.get()
            if current is None:  # called outside ContextProcessor.process
                return method(*args)
            wants_context = self._wants_context.get(name)
            if wants_context is None:
                wants_context = _wants_context(method, len(args))
                self._wants_context[name] = wants_context
            current.start(args)
            try:
                result = method(current.handler_context, *args) if wants_context else method(*args)
            except TTransportException as exc:
                current.finish(exception=exc)
                raise TApplicationException(
                    TApplicationException.INTERNAL_ERROR, "Internal error"
                ) from exc
            except BaseException as exc:
                current.finish(exception=exc)
                raise
            # before the reply is written: once the caller has its answer, the span has ended
            current.finish(result)
            return result

        return call


__all__ = [
    "BaseplateProcessorEventHandler",
    "ContextProcessor",
    "HeaderMap",
    "TProcessorEventHandler",
]
