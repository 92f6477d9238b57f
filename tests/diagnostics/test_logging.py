"""configure_logging: trace ids in thread names and log records."""

from __future__ import annotations

import logging
import threading

from opentelemetry.sdk.trace import TracerProvider

from baseplate.core import Baseplate, RequestContext, TraceInfo


def test_trace_id_in_thread_name_and_records(caplog) -> None:  # type: ignore[no-untyped-def]
    baseplate = Baseplate(tracer_provider=TracerProvider())
    baseplate.configure_logging()
    baseplate.configure_logging()  # idempotent
    assert len(baseplate.observers) == 1
    log = logging.getLogger("tests.request")
    before = threading.current_thread().name
    span = baseplate.make_server_span(
        RequestContext(), "h", TraceInfo.from_upstream(4242, 1, 77, True, None)
    )
    with caplog.at_level(logging.INFO):
        with span:
            assert threading.current_thread().name == "4242"
            log.info("inside")
            with span.make_child("op", local=True, component_name="c") as local:
                log.info("in local")
        log.info("outside")
    assert threading.current_thread().name == before
    inside, in_local, outside = caplog.records[-3:]
    assert (inside.trace_id, inside.span_id) == ("4242", "77")
    assert (in_local.trace_id, in_local.span_id) == ("4242", str(local.id))
    assert (outside.trace_id, outside.span_id) == ("", "")
    formatted = logging.Formatter("[%(trace_id)s] %(message)s").format(inside)
    assert formatted == "[4242] inside"
