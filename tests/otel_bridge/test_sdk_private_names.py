"""The private OpenTelemetry names the bridge relies on exist in the installed SDK.

Every one is used from ``otel_bridge._sdk`` only; when an SDK upgrade moves one, this test
names it, instead of a diagnostic going quiet somewhere else.
"""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, TraceState

from otel_bridge import _sdk
from otel_bridge.ids import BaseplateIdGenerator, SpanPreset, reset_preset, set_preset
from otel_bridge.sampling import BaseplateSampler

REPO = pathlib.Path(__file__).resolve().parents[2]


def _owner(path: str) -> object:
    module_name, _, attribute = path.rpartition(".")
    try:
        return importlib.import_module(path)
    except ImportError:
        return getattr(importlib.import_module(module_name), attribute)


@pytest.mark.parametrize(("owner", "name"), _sdk.PRIVATE_NAMES)
def test_private_name_exists(owner: str, name: str) -> None:
    holder = _owner(owner)
    if isinstance(holder, type) and name.startswith("_") and not hasattr(holder, name):
        # instance attributes: look at a fresh instance
        if holder is TracerProvider:
            instance: object = TracerProvider()
        elif holder is Tracer:
            instance = TracerProvider().get_tracer("x")
        elif holder is ReadableSpan:
            instance = ReadableSpan("x")
        else:
            instance = holder()
        assert hasattr(instance, name), f"{owner}.{name} is gone from the installed SDK"
    else:
        assert hasattr(holder, name), f"{owner}.{name} is gone from the installed SDK"


def test_the_helpers_work_on_the_installed_sdk() -> None:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "unknown_service"}))
    processor = SpanProcessor()
    provider.add_span_processor(processor)
    assert _sdk.span_processors(provider) == (processor,)
    tracer = provider.get_tracer("x")
    _sdk.update_resource(provider, Resource({SERVICE_NAME: "renamed"}))
    assert provider.resource.attributes[SERVICE_NAME] == "renamed"
    with tracer.start_as_current_span("s") as span:
        assert span.resource.attributes[SERVICE_NAME] == "renamed"  # type: ignore[attr-defined]
    finished = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(finished))
    with tracer.start_as_current_span("plain"):
        pass
    with tracer.start_as_current_span("logged") as logged:
        logged.add_event("e")
    plain_span, logged_span = finished.get_finished_spans()
    assert not _sdk.has_events(plain_span) and _sdk.has_events(logged_span)
    token = otel_context.attach(trace.set_span_in_context(trace.INVALID_SPAN))
    _sdk.detach(token)
    assert isinstance(_sdk.SUPPRESS_INSTRUMENTATION_KEY, str)


_PRIVATE = frozenset(name for _, name in _sdk.PRIVATE_NAMES) | {"_resource", "_tracers"}


def _fields(span: ReadableSpan) -> dict[str, object]:
    return {
        "name": span.name,
        "context": span.context,
        "parent": span.parent,
        "kind": span.kind,
        "attributes": dict(span.attributes or {}),
        "resource": span.resource,
        "scope": span.instrumentation_scope,
        "status": span.status.status_code,
        "events": span.events,
        "links": span.links,
    }


@pytest.mark.parametrize("sampled", [True, False])
def test_a_decided_span_is_the_span_the_tracer_makes(sampled: bool) -> None:
    """start_decided_span makes what Tracer.start_span makes with the baseplate sampler
    and id preset in force: same ids, flags, trace state, parent, attributes, resource,
    scope, and the same processors see it start and end."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=BaseplateSampler(1.0), id_generator=BaseplateIdGenerator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("baseplate", "1.0")
    state = TraceState([("b3flags", "1")])
    token = set_preset(SpanPreset(span_id=7, trace_id=99, sampled=sampled, trace_state=state))
    try:
        parent = tracer.start_span("server", kind=SpanKind.SERVER)
    finally:
        reset_preset(token)
    parent_context = trace.set_span_in_context(parent)
    attributes = {"component": "crunch"}

    token = set_preset(SpanPreset(span_id=11, sampled=sampled, trace_state=state))
    try:
        usual = tracer.start_span(
            "child",
            context=parent_context,
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
    finally:
        reset_preset(token)
    usual.end()
    decided = _sdk.start_decided_span(
        tracer,
        "child",
        SpanKind.CLIENT,
        parent.get_span_context(),
        parent_context,
        11,
        sampled,
        attributes,
    )
    assert decided is not None and decided.is_recording()
    decided.end()
    parent.end()
    finished = exporter.get_finished_spans() if sampled else ()
    if sampled:
        assert [span.name for span in finished] == ["child", "child", "server"]
        assert _fields(finished[1]) == _fields(finished[0])
    assert decided.get_span_context() == usual.get_span_context()  # type: ignore[attr-defined]
    assert decided.get_span_context().trace_flags.sampled is sampled


def test_no_decided_span_from_a_tracer_of_another_make() -> None:
    tracer = trace.NoOpTracer()
    assert (
        _sdk.start_decided_span(
            tracer, "x", SpanKind.CLIENT, trace.INVALID_SPAN_CONTEXT, Context(), 1, True
        )
        is None
    )


def _private_otel_uses(path: pathlib.Path) -> list[str]:
    """Attributes with a leading underscore read from OpenTelemetry names in ``path``."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry"):
            found += [alias.name for alias in node.names if alias.name.startswith("_")]
        if isinstance(node, ast.Constant) and node.value in _PRIVATE:
            found.append(node.value)  # getattr(provider, "_active_span_processor")
        if isinstance(node, ast.Attribute) and node.attr in _PRIVATE:
            found.append(node.attr)
    return found


def test_no_other_module_uses_a_private_opentelemetry_name() -> None:
    offenders = {}
    for package in ("baseplate", "otel_bridge", "exporters"):
        for path in (REPO / package).rglob("*.py"):
            if path.name == "_sdk.py" and path.parent.name == "otel_bridge":
                continue
            uses = _private_otel_uses(path)
            if uses:
                offenders[str(path.relative_to(REPO))] = uses
    assert offenders == {}
