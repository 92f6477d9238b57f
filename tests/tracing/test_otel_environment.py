"""``OTEL_*`` variables and the INI file: which wins, and clear errors for what is not
supported. The precedence rule (docs/operations.rst): an explicit ``tracing.*`` key wins over
the variable, the variable over baseplate's default."""

from __future__ import annotations

import logging
import subprocess
import sys
import types

import pytest

from baseplate.config import ConfigurationError
from baseplate.diagnostics.tracing import tracing_client_from_config
from exporters.defaults import DEFAULT_EXPORT_TIMEOUT

BASE = {"tracing.service_name": "svc"}


def client(raw: dict[str, str] | None = None, **environ: str):  # type: ignore[no-untyped-def]
    return tracing_client_from_config({**BASE, **(raw or {})}, environ=environ)


@pytest.mark.parametrize(
    ("sampler", "argument", "rate"),
    [
        ("always_on", None, 1.0),
        ("always_off", None, 0.0),
        ("parentbased_always_on", None, 1.0),
        ("parentbased_always_off", None, 0.0),
        ("traceidratio", "0.25", 0.25),
        ("parentbased_traceidratio", "0.5", 0.5),
        ("traceidratio", None, 1.0),
    ],
)
def test_otel_traces_sampler(sampler: str, argument: str | None, rate: float) -> None:
    environ = {"OTEL_TRACES_SAMPLER": sampler}
    if argument is not None:
        environ["OTEL_TRACES_SAMPLER_ARG"] = argument
    assert client(**environ).sample_rate == rate
    # the INI key wins
    assert client({"tracing.sample_rate": "10%"}, **environ).sample_rate == 0.1


def test_unsupported_sampler_names_the_variable() -> None:
    with pytest.raises(ConfigurationError) as info:
        client(OTEL_TRACES_SAMPLER="jaeger_remote")
    assert info.value.key == "OTEL_TRACES_SAMPLER"


@pytest.mark.parametrize(
    ("name", "exporter"), [("otlp_proto_http", "otlp"), ("zipkin_json", "zipkin")]
)
def test_sdk_exporter_names_are_accepted(name: str, exporter: str) -> None:
    assert client(OTEL_TRACES_EXPORTER=name).exporter == exporter
    assert client({"tracing.exporter": "none"}, OTEL_TRACES_EXPORTER=name).exporter == "none"


def test_grpc_is_refused_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "opentelemetry.distro", raising=False)
    with pytest.raises(ConfigurationError) as info:
        client(OTEL_TRACES_EXPORTER="otlp_proto_grpc")
    assert info.value.key == "OTEL_TRACES_EXPORTER"
    assert "gRPC" in str(info.value)
    for variable in ("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        with pytest.raises(ConfigurationError) as info:
            client({"tracing.exporter": "otlp"}, **{variable: "grpc"})
        assert info.value.key == variable
    assert client({"tracing.exporter": "otlp"}, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf")


def test_service_name_from_the_environment() -> None:
    assert (
        tracing_client_from_config({}, environ={"OTEL_SERVICE_NAME": "env"}).service_name == "env"
    )
    assert (
        tracing_client_from_config(
            {}, environ={"OTEL_RESOURCE_ATTRIBUTES": "team=x,service.name=attr"}
        ).service_name
        == "attr"
    )
    assert client(OTEL_SERVICE_NAME="env").service_name == "svc"  # the INI key wins
    with pytest.raises(ConfigurationError) as info:
        tracing_client_from_config({}, environ={})
    assert info.value.key == "tracing.service_name"


def test_misspelt_key_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        client({"tracing.sampel_rate": "50%"})
    assert "tracing.sampel_rate" in caplog.text
    assert "did you mean tracing.sample_rate" in caplog.text


def test_ignored_compatibility_keys_are_said_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        client({"tracing.num_span_workers": "5", "tracing.num_conns": "10"})
        client({"tracing.num_span_workers": "5", "tracing.num_conns": "10"})
    messages = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert len(messages) <= 2


HIDE_MODULE = """
import importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == sys.argv[1] or name.startswith(sys.argv[1] + "."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, Hide())
from baseplate.config import ConfigurationError
from baseplate.diagnostics.tracing import tracing_client_from_config
try:
    tracing_client_from_config(
        {"tracing.service_name": "svc", "tracing.exporter": sys.argv[2], "tracing.queue_name": "q"},
        environ={},
    )
except ConfigurationError as exc:
    print(exc)
"""


@pytest.mark.parametrize(
    ("module", "exporter", "extra"),
    [("opentelemetry.exporter", "otlp", "otlp"), ("posix_ipc", "sidecar", "posix-ipc")],
)
def test_missing_extra_is_one_line_naming_it(module: str, exporter: str, extra: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", HIDE_MODULE, module, exporter],
        capture_output=True,
        text=True,
        check=True,
    )
    (line,) = result.stdout.splitlines()
    assert line.startswith("tracing.exporter:")
    assert f"pip install 'baseplate-otel[{extra}]'" in line


NAMED_PROVIDER = """
from baseplate.core import Baseplate
from baseplate.diagnostics.tracing import tracing_client_from_config
bp = Baseplate()
bp.configure_tracing(tracing_client_from_config(
    {"tracing.service_name": "from-ini", "tracing.exporter": "none"}))
print(bp.tracer_provider.resource.attributes["service.name"])
"""


@pytest.mark.parametrize(
    ("variable", "value", "name"),
    [
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes", "from-attributes"),
        ("OTEL_SERVICE_NAME", "from-variable", "from-variable"),
        ("UNRELATED", "x", "from-ini"),
    ],
)
def test_the_resource_names_the_service_from_the_environment_first(
    variable: str, value: str, name: str
) -> None:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ[variable] = value
    result = subprocess.run(
        [sys.executable, "-c", NAMED_PROVIDER], capture_output=True, text=True, env=environ
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


SDK_DISABLED = """
import socket, sys
from baseplate import metrics
from baseplate.core import Baseplate, RequestContext
receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
receiver.bind(("127.0.0.1", 0))
receiver.settimeout(2)
bp = Baseplate()
client = metrics.make_client("svc", "127.0.0.1:%d" % receiver.getsockname()[1])
bp.configure_metrics(client)
context = RequestContext()
with bp.make_server_span(context, "route") as span:
    print("recording", span.otel_span.is_recording())
client.counter("own").increment()
print("received", receiver.recv(1000).decode())
"""


def test_otel_sdk_disabled_stops_span_metrics_but_not_the_applications() -> None:
    import os

    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ["OTEL_SDK_DISABLED"] = "true"
    result = subprocess.run(
        [sys.executable, "-c", SDK_DISABLED], capture_output=True, text=True, env=environ
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["recording False", "received svc.own:1|c"]


@pytest.mark.parametrize("endpoint", ["htp//zipkin:9411", "zipkin:94x11", "ftp://zipkin:9411"])
@pytest.mark.parametrize("exporter", ["zipkin", "otlp"])
def test_malformed_endpoint_names_the_key(endpoint: str, exporter: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        client({"tracing.exporter": exporter, "tracing.exporter.endpoint": endpoint})
    assert info.value.key == "tracing.exporter.endpoint"


@pytest.mark.parametrize(
    ("exporter", "variables"),
    [
        ("otlp", ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"]),
        ("zipkin", ["OTEL_EXPORTER_ZIPKIN_TIMEOUT"]),
    ],
)
def test_exporter_timeout_from_the_environment(exporter: str, variables: list[str]) -> None:
    ini = {"tracing.exporter": exporter}
    assert client(ini).timeout == DEFAULT_EXPORT_TIMEOUT
    # each variable alone, in seconds as the SDK's exporters read it
    for variable in variables:
        assert client(ini, **{variable: "7"}).timeout == 7.0
        assert client(ini, **{variable: "2.5"}).timeout == 2.5
    # the first in order wins (the per-signal one over the general one)
    assert client(ini, **{v: str(i + 1) for i, v in enumerate(variables)}).timeout == 1.0
    # the INI key wins over every variable, even one with a bad value
    with_ini = {**ini, "tracing.exporter.timeout": "3 seconds"}
    assert client(with_ini, **{v: "9" for v in variables}).timeout == 3.0
    assert client(with_ini, **{v: "garbage" for v in variables}).timeout == 3.0


def test_timeout_variables_of_other_exporters_and_signals_are_not_read() -> None:
    other = {
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": "9",
        "OTEL_EXPORTER_ZIPKIN_TIMEOUT": "8",
    }
    assert client({"tracing.exporter": "otlp"}, **other).timeout == DEFAULT_EXPORT_TIMEOUT
    otlp = {"OTEL_EXPORTER_OTLP_TIMEOUT": "9", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "8"}
    assert client({"tracing.exporter": "zipkin"}, **otlp).timeout == DEFAULT_EXPORT_TIMEOUT
    assert client({"tracing.exporter": "zipkin"}, OTEL_EXPORTER_ZIPKIN_TIMEOUT="6").timeout == 6
    # and a bad value in one nobody reads stops nothing
    assert client({"tracing.exporter": "none"}, OTEL_EXPORTER_OTLP_TIMEOUT="soon")


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf", "301", "5 parsecs"])
@pytest.mark.parametrize(
    ("exporter", "variable"),
    [
        ("otlp", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
        ("otlp", "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ("zipkin", "OTEL_EXPORTER_ZIPKIN_TIMEOUT"),
    ],
)
def test_bad_timeout_variable_is_one_line_naming_it(
    exporter: str, variable: str, value: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        client({"tracing.exporter": exporter}, **{variable: value})
    assert info.value.key == variable
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{variable}: ")


def test_the_distros_default_protocol_does_not_stop_an_ini_otlp_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under opentelemetry-instrument, opentelemetry-distro sets OTEL_EXPORTER_OTLP_PROTOCOL to
    # grpc for its own exporters unless it is set: with tracing.exporter = otlp in the INI
    # file (baseplate's HTTP/protobuf exporter), that default is not the operator's choice.
    monkeypatch.setitem(sys.modules, "opentelemetry.distro", types.ModuleType("distro"))
    distro_env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    assert client({"tracing.exporter": "otlp"}, **distro_env).exporter == "otlp"
    # a value the distro does not set is still refused
    for variable, value in [
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ]:
        with pytest.raises(ConfigurationError) as info:
            client({"tracing.exporter": "otlp"}, **{variable: value})
        assert info.value.key == variable
    # and so is grpc when the variables, not the INI file, chose the otlp exporter
    with pytest.raises(ConfigurationError) as info:
        client(OTEL_TRACES_EXPORTER="otlp", **distro_env)
    assert info.value.key == "OTEL_EXPORTER_OTLP_PROTOCOL"
