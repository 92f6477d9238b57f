"""metrics_client_from_config: ``metrics.exporter`` and each backend's keys and variables;
every bad value stops with one line naming the key or variable."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket

import pytest

from baseplate.config import ConfigurationError
from baseplate.metrics import Client, OTelClient, metrics_client_from_config
from exporters.otlp_metrics import OTLPMetricsExporter
from exporters.statsd import NullTransport, UDPTransport
from tests.server.conftest import free_port


def configure(environ: dict[str, str] | None = None, **keys: str) -> Client:
    raw = {"metrics." + key.replace("__", "."): value for key, value in keys.items()}
    return metrics_client_from_config(raw, environ=environ or {})


def error_of(environ: dict[str, str] | None = None, **keys: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        configure(environ, **keys)
    message = str(caught.value)
    assert "\n" not in message
    return message


def otlp_url(client: Client) -> str:
    assert isinstance(client, OTelClient)
    exporter = client.pipeline.reader._exporter  # type: ignore[attr-defined]
    assert isinstance(exporter, OTLPMetricsExporter)
    return exporter.url


def test_without_metrics_exporter_the_statsd_client_is_unchanged() -> None:
    client = configure(namespace="svc", endpoint="127.0.0.1:8125")
    assert type(client) is Client
    assert isinstance(client.transport, UDPTransport)
    assert client.namespace == b"svc"
    assert type(configure(exporter="statsd", namespace="svc", endpoint="")) is Client
    assert error_of(endpoint="127.0.0.1:8125").startswith("metrics.namespace:")


def test_none_discards_and_needs_no_namespace() -> None:
    client = configure(exporter="none")
    assert type(client) is Client and isinstance(client.transport, NullTransport)


@pytest.mark.parametrize("value", ["prometeus", "graphite", "statsd,otlp"])
def test_an_unknown_exporter_is_refused_naming_the_key(value: str) -> None:
    message = error_of(exporter=value, namespace="svc")
    assert message.startswith("metrics.exporter: expected one of 'statsd', 'otlp'")
    assert repr(value) in message


def test_exporter_names_ignore_case_and_blanks() -> None:
    assert isinstance(configure(exporter=" OTLP ", namespace="svc"), OTelClient)


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("collector:4318", "http://collector:4318/v1/metrics"),
        ("https://collector", "https://collector/v1/metrics"),
        ("http://collector:4318/custom/path", "http://collector:4318/custom/path"),
    ],
)
def test_otlp_endpoint_from_the_ini(endpoint: str, url: str) -> None:
    assert otlp_url(configure(exporter="otlp", otlp__endpoint=endpoint)) == url


def test_otlp_endpoint_from_the_environment_where_the_ini_is_silent() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://signal:4318/metrics/here",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://base:4318",
    }
    assert otlp_url(configure(environ, exporter="otlp")) == "http://signal:4318/metrics/here"
    del environ["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"]
    assert otlp_url(configure(environ, exporter="otlp")) == "http://base:4318/v1/metrics"
    ini = configure(environ, exporter="otlp", otlp__endpoint="ini:4318")
    assert otlp_url(ini) == "http://ini:4318/v1/metrics"
    assert otlp_url(configure({}, exporter="otlp")) == "http://localhost:4318/v1/metrics"


@pytest.mark.parametrize("endpoint", ["ftp://collector", "http://", "collector:port"])
def test_a_bad_otlp_endpoint_is_refused_naming_the_key(endpoint: str) -> None:
    message = error_of(exporter="otlp", otlp__endpoint=endpoint)
    assert message.startswith("metrics.otlp.endpoint:")


def test_bad_otlp_variables_are_refused_naming_the_variable() -> None:
    message = error_of({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "udp://x"}, exporter="otlp")
    assert message.startswith("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT:")
    message = error_of({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, exporter="otlp")
    assert message.startswith("OTEL_EXPORTER_OTLP_PROTOCOL:") and "http/protobuf" in message
    message = error_of({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, exporter="otlp")
    assert message.startswith("OTEL_METRIC_EXPORT_INTERVAL:")


def test_otlp_interval_and_timeout() -> None:
    client = configure(exporter="otlp", otlp__interval="500 milliseconds", otlp__timeout="2")
    assert isinstance(client, OTelClient)
    reader = client.pipeline.reader
    assert reader._export_interval_millis == 500  # type: ignore[attr-defined]
    assert reader._export_timeout_millis == 2000  # type: ignore[attr-defined]
    environ = {"OTEL_METRIC_EXPORT_INTERVAL": "1500", "OTEL_METRIC_EXPORT_TIMEOUT": "3000"}
    # another destination, so not the pipeline made above
    client = configure(environ, exporter="otlp", otlp__endpoint="other:4318")
    assert isinstance(client, OTelClient)
    assert client.pipeline.reader._export_interval_millis == 1500  # type: ignore[attr-defined]
    assert client.pipeline.reader._export_timeout_millis == 3000  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", ["0", "nan", "-1", "inf", "2 hours", "1 millisecond", "soon"])
def test_a_bad_otlp_interval_is_refused_naming_the_key(value: str) -> None:
    assert error_of(exporter="otlp", otlp__interval=value).startswith("metrics.otlp.interval:")


@pytest.mark.parametrize("value", ["0", "nan", "10 minutes"])
def test_a_bad_otlp_timeout_is_refused_naming_the_key(value: str) -> None:
    assert error_of(exporter="otlp", otlp__timeout=value).startswith("metrics.otlp.timeout:")


def test_a_bad_namespace_is_refused_naming_the_key() -> None:
    assert error_of(exporter="otlp", namespace="caf\xe9").startswith("metrics.namespace:")


def test_prometheus_port_in_use_is_refused_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = error_of(
            exporter="prometheus", prometheus__host="127.0.0.1", prometheus__port=str(port)
        )
    assert message.startswith(f"metrics.prometheus.port: cannot listen on 127.0.0.1:{port}")
    assert "in use" in message


def test_prometheus_port_from_the_environment_is_named_when_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environ = {
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        }
        message = error_of(environ, exporter="prometheus")
    assert message.startswith("OTEL_EXPORTER_PROMETHEUS_PORT: cannot listen")


@pytest.mark.parametrize("value", ["70000", "-1", "nine", "80.5"])
def test_a_bad_prometheus_port_is_refused_naming_the_key(value: str) -> None:
    message = error_of(exporter="prometheus", prometheus__port=value)
    assert message.startswith("metrics.prometheus.port:")


def test_a_prometheus_host_that_does_not_resolve_is_refused_naming_the_key() -> None:
    message = error_of(
        exporter="prometheus", prometheus__host="no-such-host.invalid", prometheus__port="0"
    )
    assert message.startswith("metrics.prometheus.host:")


def test_one_endpoint_per_process_is_shared_by_its_clients() -> None:
    port = str(free_port())
    first = configure(exporter="prometheus", prometheus__host="127.0.0.1", prometheus__port=port)
    second = configure(
        exporter="prometheus",
        namespace="other",
        prometheus__host="127.0.0.1",
        prometheus__port=port,
    )
    assert isinstance(first, OTelClient) and isinstance(second, OTelClient)
    assert first.pipeline is second.pipeline


def test_an_einhorn_worker_listens_on_port_plus_its_index(monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv("EINHORN_MASTER_PID", str(os.getppid()))
    monkeypatch.setenv("EINHORN_CHILD_INDEX", "2")
    client = configure(
        exporter="prometheus", prometheus__host="127.0.0.1", prometheus__port=str(port - 2)
    )
    assert isinstance(client, OTelClient)
    assert client.pipeline.prometheus_endpoint.port == port  # type: ignore[attr-defined]
    monkeypatch.setenv("EINHORN_CHILD_INDEX", "9")
    message = error_of(exporter="prometheus", prometheus__port="65530")
    assert message.startswith("metrics.prometheus.port:") and "index 9" in message


@pytest.mark.parametrize(
    ("exporter", "module", "extra"),
    [
        ("otlp", "opentelemetry.exporter.otlp.proto.http", "otlp"),
        ("prometheus", "prometheus_client", "prometheus"),
    ],
)
def test_a_missing_extra_is_named(monkeypatch, exporter: str, module: str, extra: str) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        return None if name == module else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    message = error_of(exporter=exporter)
    assert message.startswith("metrics.exporter:") and f"baseplate-otel[{extra}]" in message


def test_misspelt_and_other_backends_keys_are_warned_about(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="baseplate.metrics"):
        configure(exporter="otlp", otlp__endpiont="x:4318", endpoint="127.0.0.1:8125")
    assert "metrics.otlp.endpiont is ignored; did you mean metrics.otlp.endpoint?" in caplog.text
    assert "metrics.endpoint is for metrics.exporter = statsd" in caplog.text


def _export_timeout_millis(client: Client) -> float:
    assert isinstance(client, OTelClient)
    return client.pipeline.reader._export_timeout_millis  # type: ignore[attr-defined,no-any-return]


@pytest.mark.parametrize(
    ("environ", "millis"),
    [
        ({}, 5000),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "4"}, 4000),
        ({"OTEL_METRIC_EXPORT_TIMEOUT": "3000"}, 3000),
        ({"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "2.5"}, 2500),
        # the metrics exporter's own variable, then the reader's, then the general one
        ({"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "2", "OTEL_EXPORTER_OTLP_TIMEOUT": "4"}, 2000),
        ({"OTEL_METRIC_EXPORT_TIMEOUT": "3000", "OTEL_EXPORTER_OTLP_TIMEOUT": "4"}, 3000),
        ({"OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "2", "OTEL_METRIC_EXPORT_TIMEOUT": "3000"}, 2000),
        # the traces exporter's variable is not the metrics exporter's
        ({"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "7"}, 5000),
    ],
)
def test_otlp_timeout_from_the_environment(environ: dict[str, str], millis: int) -> None:
    assert _export_timeout_millis(configure(environ, exporter="otlp")) == millis
    # the INI key wins over every variable
    client = configure(environ, exporter="otlp", otlp__endpoint="other:4318", otlp__timeout="1")
    assert _export_timeout_millis(client) == 1000


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf", "301"])
@pytest.mark.parametrize(
    "variable", ["OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]
)
def test_a_bad_otlp_timeout_variable_is_refused_naming_it(variable: str, value: str) -> None:
    assert error_of({variable: value}, exporter="otlp").startswith(f"{variable}:")
    # unread when the INI key is set
    assert configure({variable: value}, exporter="otlp", otlp__timeout="1")


def test_the_distros_default_protocol_does_not_stop_the_otlp_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    environ = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    monkeypatch.delitem(sys.modules, "opentelemetry.distro", raising=False)
    assert error_of(environ, exporter="otlp").startswith("OTEL_EXPORTER_OTLP_PROTOCOL:")
    # opentelemetry-distro sets it to grpc for its own exporters when it is unset
    monkeypatch.setitem(sys.modules, "opentelemetry.distro", types.ModuleType("distro"))
    assert isinstance(configure(environ, exporter="otlp"), OTelClient)
    metrics_only = {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"}
    assert error_of(metrics_only, exporter="otlp").startswith(
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL:"
    )
