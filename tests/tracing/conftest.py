"""Fixtures for the tracing configuration tests: the exporters' local collectors and queues.

Defined with the exporter tests (:mod:`tests.exporters.fixtures`); the tests here export
through the same collectors.
"""

from tests.exporters.fixtures import (  # noqa: F401
    Receiver,
    receiver,
    trace_queue_name,
    zipkin_schema,
)
