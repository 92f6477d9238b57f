"""Pieces shared by the instrumented client integrations in :mod:`baseplate.context`.

Prefixed configuration parsing, and the rule for vendor auto-instrumentation overlap:

**When a call goes through a baseplate client proxy, baseplate's client span is the span of
record.** If the matching ``opentelemetry-instrumentation-*`` package is also instrumenting
the same library (its instrumentor reports ``is_instrumented_by_opentelemetry``), the call
runs with OpenTelemetry's "suppress instrumentation" context value set, so the vendor span
for that same call is not created. Calls made outside baseplate's proxies are left to the
vendor instrumentation as usual.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from baseplate import config
from otel_bridge.context import deactivate, suppress_instrumentation


def parse_prefixed(
    app_config: Mapping[str, str], prefix: str, spec: Mapping[str, Any]
) -> config.ConfigNamespace:
    """Parse the keys below ``prefix`` (which must end with a dot) against ``spec``.

    Errors name the full key, e.g. ``redis.url``. Values built in code rather than read
    from a file (``{"memcache.max_pool_size": 300}``) are read as their text, as
    :func:`baseplate.config.parse_config` reads them.
    """
    if not isinstance(prefix, str) or not prefix.endswith("."):
        raise ValueError(f"prefix must end with a dot, got {prefix!r}")
    raw = {
        key: value
        for key, value in app_config.items()
        if isinstance(key, str) and key.startswith(prefix)
    }
    return config.SpecParser(spec).parse(prefix[:-1], raw)


def vendor_instrumentation_active(module_name: str, instrumentor_name: str) -> bool:
    """Whether an OpenTelemetry instrumentor is currently instrumenting its library.

    Only an already imported instrumentation module can be active, so nothing is imported
    here: ``module_name`` is looked up in ``sys.modules``.
    """
    module = sys.modules.get(module_name)
    if module is None:
        return False
    instrumentor_class = getattr(module, instrumentor_name, None)
    if instrumentor_class is None:
        return False
    try:
        return bool(instrumentor_class().is_instrumented_by_opentelemetry)
    except Exception:
        return False


def restore_instrumentation(token: object) -> None:
    """Undo :func:`suppress_instrumentation`."""
    deactivate(token)


@contextmanager
def vendor_suppressed(active: bool) -> Iterator[None]:
    """Run the block with vendor instrumentation suppressed when ``active``."""
    if not active:
        yield
        return
    token = suppress_instrumentation()
    try:
        yield
    finally:
        restore_instrumentation(token)
