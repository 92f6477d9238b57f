"""The export fixtures (defined in :mod:`tests.exporters.fixtures`) for this folder."""

from tests.exporters.fixtures import (  # noqa: F401
    hanging_address,
    receiver,
    refused_address,
    rotel,
    spans,
    trace_queue_name,
    zipkin_schema,
)
