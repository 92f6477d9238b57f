"""Suite-wide hygiene: each test starts with an empty OpenTelemetry context.

A test that fails half-way can leave a span active; without this, the next test's server
spans would join that stray trace.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context


@pytest.fixture(autouse=True)
def _isolated_otel_context() -> Iterator[None]:
    token = otel_context.attach(otel_context.Context())
    yield
    try:
        otel_context.detach(token)
    except Exception:
        pass
