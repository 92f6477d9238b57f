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
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from otel_bridge import _sdk

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
        instance = TracerProvider() if holder is TracerProvider else holder()
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
    token = otel_context.attach(trace.set_span_in_context(trace.INVALID_SPAN))
    _sdk.detach(token)
    assert isinstance(_sdk.SUPPRESS_INSTRUMENTATION_KEY, str)


_PRIVATE = frozenset(name for _, name in _sdk.PRIVATE_NAMES) | {"_resource", "_tracers"}


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
