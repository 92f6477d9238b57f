"""Unknown keys in the sections baseplate owns: one warning line per key, naming it and the
nearest known key (baseplate.config.warn_unknown_keys, which every helper below uses)."""

from __future__ import annotations

import configparser
import io
import json
import logging
import pathlib
import socket
from collections.abc import Iterator

import pytest

from baseplate import config
from baseplate.server.loading import make_server, read_config

LOGGER = logging.getLogger("tests.unknown_keys")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert all("\n" not in line for line in lines)
    return [line for line in lines if line.startswith("unknown configuration key")]


def test_one_line_per_unknown_key_naming_the_nearest(caplog: pytest.LogCaptureFixture) -> None:
    raw = {
        "pool.size": "1",
        "pool.szie": "2",
        "pool.timout": "3",
        "pool.xyzzy": "4",
        "other.szie": "5",
        "poolsize": "6",
    }
    with caplog.at_level(logging.WARNING):
        unknown = config.warn_unknown_keys(raw, "pool.", ("size", "timeout"), LOGGER)

    assert unknown == ["pool.szie", "pool.timout", "pool.xyzzy"]
    assert warnings_of(caplog) == [
        "unknown configuration key pool.szie is ignored; did you mean pool.size?",
        "unknown configuration key pool.timout is ignored; did you mean pool.timeout?",
        "unknown configuration key pool.xyzzy is ignored; known keys: pool.size, pool.timeout",
    ]
    assert {record.name for record in caplog.records} == {"tests.unknown_keys"}


def test_a_whole_section_with_keys_to_ignore(caplog: pytest.LogCaptureFixture) -> None:
    raw = {"factory": "x", "stop_timout": "5", "here": "/srv"}
    with caplog.at_level(logging.WARNING):
        unknown = config.warn_unknown_keys(raw, "", ("factory", "stop_timeout"), ignore={"here"})
    assert unknown == ["stop_timout"]
    assert warnings_of(caplog) == [
        "unknown configuration key stop_timout is ignored; did you mean stop_timeout?"
    ]


def test_known_keys_only_warn_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert config.warn_unknown_keys({"a.b": "1", "c": "2"}, "a.", ("b",)) == []
    assert warnings_of(caplog) == []


def test_tracing(caplog: pytest.LogCaptureFixture) -> None:
    from baseplate.diagnostics.tracing import tracing_client_from_config

    raw = {"tracing.service_name": "svc", "tracing.sampel_rate": "50%", "tracing.exporter": "none"}
    with caplog.at_level(logging.WARNING):
        tracing_client_from_config(raw, environ={})
    assert warnings_of(caplog) == [
        "unknown configuration key tracing.sampel_rate is ignored; "
        "did you mean tracing.sample_rate?"
    ]


def test_metrics(caplog: pytest.LogCaptureFixture) -> None:
    from baseplate.metrics import metrics_client_from_config

    raw = {"metrics.exporter": "none", "metrics.namepsace": "svc"}
    with caplog.at_level(logging.WARNING):
        metrics_client_from_config(raw, environ={})
    assert warnings_of(caplog) == [
        "unknown configuration key metrics.namepsace is ignored; "
        "did you mean metrics.namespace?"
    ]


def test_sentry(caplog: pytest.LogCaptureFixture) -> None:
    from baseplate.diagnostics.sentry import error_reporter_from_config

    raw = {"sentry.dsn": "", "sentry.sampel_rate": "5%", "sentry.enviroment": "prod"}
    with caplog.at_level(logging.WARNING):
        error_reporter_from_config(raw, __name__)
    assert warnings_of(caplog) == [
        "unknown configuration key sentry.enviroment is ignored; "
        "did you mean sentry.environment?",
        "unknown configuration key sentry.sampel_rate is ignored; "
        "did you mean sentry.sample_rate?",
    ]


def test_secrets(caplog: pytest.LogCaptureFixture, tmp_path: pathlib.Path) -> None:
    from baseplate.secrets import secrets_store_from_config

    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"secrets": {}, "vault": {"url": "x", "token": "t"}}))
    with caplog.at_level(logging.WARNING):
        secrets_store_from_config({"secrets.path": str(path), "secrets.pth": "/x"}, timeout=0)
    assert warnings_of(caplog) == [
        "unknown configuration key secrets.pth is ignored; did you mean secrets.path?"
    ]


def test_zookeeper(caplog: pytest.LogCaptureFixture) -> None:
    from baseplate.live_data.zookeeper import zookeeper_client_from_config

    raw = {"zookeeper.hosts": "127.0.0.1:2181", "zookeeper.timout": "1 second"}
    with caplog.at_level(logging.WARNING):
        client = zookeeper_client_from_config(None, raw)  # made, not started
    client.close()
    assert warnings_of(caplog) == [
        "unknown configuration key zookeeper.timout is ignored; did you mean zookeeper.timeout?"
    ]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


INI = """\
[DEFAULT]
here = /srv/app

[server:main]
factory = baseplate.server.{server}
stop_timout = 5
max_concurency = 10

[app:main]
factory = tests.test_config_unknown_keys:unused
"""


def _thrift_processor() -> object:
    class Processor:
        def process(self, iprot: object, oprot: object) -> None:
            pass

    return Processor()


@pytest.mark.parametrize("server", ["wsgi", "thrift"])
def test_server_section(
    caplog: pytest.LogCaptureFixture, listener: socket.socket, server: str
) -> None:
    configuration = read_config(io.StringIO(INI.format(server=server)), "main", "main")
    assert configuration.default_keys == {"here"}
    assert configuration.server is not None and configuration.server["here"] == "/srv/app"
    app = (lambda environ, start_response: []) if server == "wsgi" else _thrift_processor()

    with caplog.at_level(logging.WARNING):
        make_server(configuration.server, listener, app, default_keys=configuration.default_keys)

    # [DEFAULT]'s "here" is in every section: not reported
    assert warnings_of(caplog) == [
        "unknown configuration key max_concurency is ignored; did you mean max_concurrency?",
        "unknown configuration key stop_timout is ignored; did you mean stop_timeout?",
    ]


def test_a_server_factory_without_server_keys_is_not_checked(
    caplog: pytest.LogCaptureFixture, listener: socket.socket
) -> None:
    section = {"factory": "tests.test_config_unknown_keys:custom_server", "anything": "1"}
    with caplog.at_level(logging.WARNING):
        assert make_server(section, listener, None) == "custom"
    assert warnings_of(caplog) == []


def custom_server(server_config: dict[str, str], listener: socket.socket, app: object) -> str:
    return "custom"


def test_the_wsgi_handler_option_is_known(
    caplog: pytest.LogCaptureFixture, listener: socket.socket
) -> None:
    parser = configparser.RawConfigParser()
    parser.read_string(
        "[s]\nfactory = baseplate.server.wsgi\nhandler = gevent.pywsgi:WSGIHandler\n"
    )
    with caplog.at_level(logging.WARNING):
        make_server(dict(parser.items("s")), listener, lambda environ, start_response: [])
    assert warnings_of(caplog) == []
