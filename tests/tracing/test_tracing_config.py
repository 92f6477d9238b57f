"""tracing_client_from_config: documented keys, exporter selection, OTEL_* precedence, errors."""

from __future__ import annotations

import pytest

import baseplate
from baseplate.config import ConfigurationError
from baseplate.diagnostics.tracing import TracingClient, tracing_client_from_config
from exporters.batch import BoundedBatchSpanProcessor
from exporters.console import ConsoleSpanExporter
from exporters.otlp import OTLPExporter
from exporters.sidecar import SidecarExporter
from exporters.zipkin import ZipkinExporter

BASE = {"tracing.service_name": "my-service"}


def client(environ: dict[str, str] | None = None, **keys: str) -> TracingClient:
    raw = dict(BASE)
    raw.update({f"tracing.{key.replace('__', '.')}": value for key, value in keys.items()})
    return tracing_client_from_config(raw, environ=environ or {})


def test_defaults() -> None:
    tracing = client()

    assert tracing.service_name == "my-service"
    assert tracing.sample_rate == 0.1
    assert tracing.exporter == "console"
    assert tracing.max_span_queue_size == 50000
    assert tracing.num_span_workers == 5
    assert tracing.span_batch_interval == 0.5
    assert tracing.num_conns == 100
    assert tracing.propagators is None


def test_unconfigured_without_logging_discards() -> None:
    tracing = tracing_client_from_config(BASE, log_if_unconfigured=False, environ={})

    assert tracing.exporter == "none"
    assert tracing.make_span_processor() is None


def test_top_level_helper_delegates() -> None:
    tracing = baseplate.tracing_client_from_config(
        {**BASE, "tracing.exporter": "none"}, log_if_unconfigured=False
    )

    assert isinstance(tracing, TracingClient)
    assert tracing.exporter == "none"


def test_every_documented_key() -> None:
    tracing = client(
        endpoint="zipkin:9411",
        max_span_queue_size="100",
        num_span_workers="2",
        span_batch_interval="250 milliseconds",
        num_conns="7",
        sample_rate="37%",
    )

    assert tracing.exporter == "zipkin"
    assert tracing.endpoint == "zipkin:9411"
    assert tracing.max_span_queue_size == 100
    assert tracing.num_span_workers == 2
    assert tracing.span_batch_interval == 0.25
    assert tracing.num_conns == 7
    assert tracing.sample_rate == pytest.approx(0.37)


@pytest.mark.parametrize(("text", "rate"), [("37%", 0.37), ("0.25", 0.25), ("100%", 1.0), ("0", 0)])
def test_sample_rate_as_percent_or_float(text: str, rate: float) -> None:
    assert client(sample_rate=text).sample_rate == pytest.approx(rate)


def test_span_batch_interval_in_seconds() -> None:
    assert client(span_batch_interval="2").span_batch_interval == 2.0
    assert client(span_batch_interval="1 second").span_batch_interval == 1.0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("sample_rate", "150%"),
        ("sample_rate", "2"),
        ("sample_rate", "often"),
        ("max_span_queue_size", "0"),
        ("max_span_queue_size", "lots"),
        ("num_span_workers", "-1"),
        ("span_batch_interval", "soon"),
        ("num_conns", "1.5"),
        ("endpoint", "zipkin:port"),
        ("queue_name", "a/b"),
        ("exporter", "jaeger"),
        ("exporter.timeout", "0"),
        ("propagators", "smoke-signals"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        client(**{key.replace(".", "__"): value})
    assert info.value.key == f"tracing.{key}"
    assert f"tracing.{key}" in str(info.value)


def test_service_name_is_required() -> None:
    with pytest.raises(ConfigurationError) as info:
        tracing_client_from_config({"tracing.endpoint": "zipkin:9411"}, environ={})
    assert info.value.key == "tracing.service_name"


def test_sidecar_needs_a_queue_name() -> None:
    with pytest.raises(ConfigurationError) as info:
        client(exporter="sidecar")
    assert info.value.key == "tracing.queue_name"


def test_legacy_keys_choose_the_exporter() -> None:
    assert client(queue_name="main").exporter == "sidecar"
    assert client(endpoint="zipkin:9411").exporter == "zipkin"
    assert client(queue_name="main", endpoint="zipkin:9411").exporter == "sidecar"


def test_explicit_exporter_key_wins_over_environment_and_legacy_keys() -> None:
    environ = {"OTEL_TRACES_EXPORTER": "otlp"}
    tracing = client(environ, exporter="zipkin", queue_name="main")

    assert tracing.exporter == "zipkin"
    assert tracing.endpoint == "http://localhost:9411/api/v2/spans"


def test_environment_exporter_wins_over_legacy_keys() -> None:
    tracing = client({"OTEL_TRACES_EXPORTER": "otlp,console"}, queue_name="main")

    assert tracing.exporter == "otlp"
    assert tracing.endpoint is None  # the OTLP default, http://localhost:4318/v1/traces


def test_bad_environment_exporter_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        client({"OTEL_TRACES_EXPORTER": "carrier-pigeon"})
    assert info.value.key == "OTEL_TRACES_EXPORTER"


def test_otlp_endpoint_precedence() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:4318/custom",
    }
    explicit = client(environ, exporter="otlp", exporter__endpoint="collector:4318")
    traces_variable = client(environ, exporter="otlp")
    base_variable = client({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318/"}, exporter="otlp")

    assert explicit.endpoint == "http://collector:4318/v1/traces"
    assert traces_variable.endpoint == "http://traces:4318/custom"
    assert base_variable.endpoint == "http://base:4318/v1/traces"


def test_zipkin_endpoint_precedence() -> None:
    environ = {
        "OTEL_TRACES_EXPORTER": "zipkin",
        "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "http://env-zipkin:9411/api/v2/spans",
    }

    assert client(environ).endpoint == "http://env-zipkin:9411/api/v2/spans"
    assert client(environ, endpoint="legacy:9411").endpoint == "legacy:9411"
    explicit = client(environ, endpoint="legacy:9411", exporter__endpoint="http://new:9411")
    assert explicit.endpoint == "http://new:9411"


def test_sample_rate_precedence() -> None:
    environ = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}

    assert client(environ).sample_rate == 0.5
    assert client(environ, sample_rate="20%").sample_rate == pytest.approx(0.2)
    assert client({"OTEL_TRACES_SAMPLER_ARG": "0.5"}).sample_rate == 0.1
    with pytest.raises(ConfigurationError) as info:
        client({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "x"})
    assert info.value.key == "OTEL_TRACES_SAMPLER_ARG"


def test_exporter_timeout_and_propagators() -> None:
    tracing = client(exporter__timeout="3 seconds", propagators="baseplate, B3multi")

    assert tracing.timeout == 3.0
    assert tracing.propagators == ("baseplate", "b3multi")


def test_processor_wraps_the_chosen_exporter(trace_queue_name: str) -> None:
    processors = {
        "zipkin": client(exporter="zipkin").make_span_processor(),
        "otlp": client(exporter="otlp").make_span_processor(),
        "console": client(exporter="console").make_span_processor(),
        "sidecar": client(queue_name=trace_queue_name).make_span_processor(),
    }
    expected = {
        "zipkin": ZipkinExporter,
        "otlp": OTLPExporter,
        "console": ConsoleSpanExporter,
        "sidecar": SidecarExporter,
    }
    for name, processor in processors.items():
        assert isinstance(processor, BoundedBatchSpanProcessor)
        assert isinstance(processor.exporter, expected[name])
        processor.shutdown()
    assert processors["zipkin"].max_queue_size == 50000
    assert processors["zipkin"].schedule_delay == 0.5
