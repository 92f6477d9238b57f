"""baseplate.context.hvac against the OpenBao dev server (http://127.0.0.1:8200, token
``root``), with a secrets file pointing at it."""

from __future__ import annotations

import datetime
import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from baseplate.config import ConfigurationError
from baseplate.context.hvac import (
    HvacContextFactory,
    InstrumentedHvacClient,
    hvac_factory_from_config,
)
from baseplate.core import Baseplate, RequestContext
from baseplate.secrets import SecretsStore
from otel_bridge.semconv import TRACER_NAME

from .conftest import TcpProxy, attributes, ensure_service, finished, free_port, only

VAULT = "http://127.0.0.1:8200"


@pytest.fixture(autouse=True)
def openbao() -> None:
    ensure_service(8200)


def write_secrets(path: Path, url: str = VAULT, token: str = "root") -> SecretsStore:
    path.write_text(json.dumps({"secrets": {}, "vault": {"url": url, "token": token}}))
    return SecretsStore(str(path))


@pytest.fixture
def secrets(tmp_path: Path) -> SecretsStore:
    return write_secrets(tmp_path / "secrets.json")


@pytest.fixture
def secret_path() -> Iterator[str]:
    path = f"baseplate-test/{uuid.uuid4().hex}"
    yield path
    hvac.Client(VAULT, token="root").secrets.kv.v2.delete_metadata_and_all_versions(path)


def vault_for(baseplate: Baseplate, factory: HvacContextFactory) -> tuple[Any, Any]:
    baseplate.add_to_context("vault", factory)
    context = RequestContext()
    span = baseplate.make_server_span(context, "handler")
    span.start()
    return context.vault, span


# -- configuration ---------------------------------------------------------------------


def test_factory_from_config(secrets: SecretsStore) -> None:
    factory = hvac_factory_from_config({"vault.timeout": "300 milliseconds"}, secrets)
    assert isinstance(factory, HvacContextFactory)
    assert factory.timeout == datetime.timedelta(milliseconds=300)
    assert factory.secrets is secrets

    default = hvac_factory_from_config({}, secrets)
    assert default.timeout == datetime.timedelta(seconds=1)

    custom = hvac_factory_from_config({"bao.timeout": "2 seconds"}, secrets, prefix="bao.")
    assert custom.timeout == datetime.timedelta(seconds=2)

    with pytest.raises(ConfigurationError, match=r"vault\.timeout"):
        hvac_factory_from_config({"vault.timeout": "soon"}, secrets)

    assert HvacContextFactory(secrets, 2.5).timeout == datetime.timedelta(seconds=2.5)
    with pytest.raises(TypeError, match="timeout"):
        HvacContextFactory(secrets, "1 second")  # type: ignore[arg-type]


# -- spans -------------------------------------------------------------------------------


def test_every_vault_call_is_a_span(
    baseplate: Baseplate,
    secrets: SecretsStore,
    exporter: InMemorySpanExporter,
    secret_path: str,
) -> None:
    factory = HvacContextFactory(secrets, datetime.timedelta(seconds=5))
    vault, server_span = vault_for(baseplate, factory)
    assert isinstance(vault, InstrumentedHvacClient)
    assert isinstance(vault, hvac.Client)
    assert vault.is_authenticated()
    vault.secrets.kv.v2.create_or_update_secret(secret_path, secret={"password": "hunter2"})
    read = vault.secrets.kv.v2.read_secret_version(secret_path, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"password": "hunter2"}

    spans = finished(exporter, "vault.request")
    assert len(spans) == 3
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.instrumentation_scope.name == TRACER_NAME
        assert span.parent is not None and span.parent.span_id == server_span.id
        assert attributes(span)["http.status_code"] == 200
    assert [attributes(span)["http.method"] for span in spans] == ["GET", "POST", "GET"]
    assert attributes(spans[0])["http.url"] == "/v1/auth/token/lookup-self"
    assert attributes(spans[1])["http.url"] == f"/v1/secret/data/{secret_path}"


def test_token_and_url_come_from_the_secrets_store_each_request(
    baseplate: Baseplate, tmp_path: Path
) -> None:
    path = tmp_path / "secrets.json"
    secrets = write_secrets(path, token="not-a-token")
    factory = HvacContextFactory(secrets, datetime.timedelta(seconds=5))
    baseplate.add_to_context("vault", factory)

    context = RequestContext()
    with baseplate.make_server_span(context, "first"):
        assert not context.vault.is_authenticated()

    write_secrets(path, token="root")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a visible change
    context = RequestContext()
    with baseplate.make_server_span(context, "second"):
        assert context.vault.is_authenticated()


def test_vault_error_reaches_caller_and_fails_span(
    baseplate: Baseplate, secrets: SecretsStore, exporter: InMemorySpanExporter
) -> None:
    vault, _ = vault_for(baseplate, HvacContextFactory(secrets, datetime.timedelta(seconds=5)))
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.secrets.kv.v2.read_secret_version(f"missing/{uuid.uuid4().hex}")
    span = only(exporter, "vault.request")
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)["http.status_code"] == 404
    (event,) = [event for event in span.events if event.name == "exception"]
    assert event.attributes is not None
    assert str(event.attributes["exception.type"]).endswith("InvalidPath")


def vendor_spans(exporter: InMemorySpanExporter) -> list[Any]:
    spans = exporter.get_finished_spans()
    return [span for span in spans if span.instrumentation_scope.name != TRACER_NAME]


def test_vendor_requests_span_is_suppressed(
    baseplate: Baseplate,
    secrets: SecretsStore,
    exporter: InMemorySpanExporter,
    provider: TracerProvider,
) -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    instrumentor = RequestsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        factory = HvacContextFactory(secrets, datetime.timedelta(seconds=5))
        vault, _ = vault_for(baseplate, factory)
        assert vault.is_authenticated()
        assert vendor_spans(exporter) == []
        assert only(exporter, "vault.request")
        requests.get(f"{VAULT}/v1/sys/health", timeout=5)  # outside the proxy: traced by it
        assert len(vendor_spans(exporter)) == 1
    finally:
        instrumentor.uninstrument()


# -- faults ------------------------------------------------------------------------------


def test_vault_down_then_back(
    baseplate: Baseplate, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    proxy = TcpProxy(("127.0.0.1", 8200), port=free_port())
    secrets = write_secrets(tmp_path / "secrets.json", url=f"http://127.0.0.1:{proxy.port}")
    factory = HvacContextFactory(secrets, datetime.timedelta(seconds=2))

    vault, _ = vault_for(baseplate, factory)
    with pytest.raises(requests.exceptions.ConnectionError):
        vault.is_authenticated()
    assert only(exporter, "vault.request").status.status_code is StatusCode.ERROR

    proxy.start()
    try:
        vault, _ = vault_for(baseplate, factory)
        assert vault.is_authenticated()
        proxy.kill()  # killed with a connection kept alive in the session's pool
        with pytest.raises(requests.exceptions.ConnectionError):
            vault.is_authenticated()
        proxy.start()
        assert vault.is_authenticated()
    finally:
        proxy.kill()
    statuses = [span.status.status_code for span in finished(exporter, "vault.request")]
    assert statuses == [StatusCode.ERROR, StatusCode.UNSET, StatusCode.ERROR, StatusCode.UNSET]


def test_timeout_fails_span(
    baseplate: Baseplate, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    # a listener that accepts and never answers stands in for a hung Vault
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        secrets = write_secrets(tmp_path / "secrets.json", url=url)
        factory = hvac_factory_from_config({"vault.timeout": "200 milliseconds"}, secrets)
        vault, _ = vault_for(baseplate, factory)
        with pytest.raises(requests.exceptions.Timeout):
            vault.is_authenticated()
    assert only(exporter, "vault.request").status.status_code is StatusCode.ERROR
