"""The numeric metrics.* keys of the OTLP and Prometheus backends fed the configuration fuzz
test's bad values (NaN, infinities, negatives, absurd sizes, garbage): each ends in one line
naming the key; an empty value is the key not configured."""

from __future__ import annotations

from typing import Any

import pytest

from baseplate.config import ConfigurationError
from baseplate.metrics import metrics_client_from_config
from tests.test_config_fuzz import BAD_VALUES

#: Where the INI is silent, the Prometheus port is any free one (never the default 9464).
ENVIRON = {"OTEL_EXPORTER_PROMETHEUS_PORT": "0"}

GOOD = {
    "otlp": {
        "metrics.exporter": "otlp",
        "metrics.otlp.endpoint": "http://127.0.0.1:4318",
        "metrics.otlp.interval": "30 seconds",
        "metrics.otlp.timeout": "2 seconds",
    },
    "prometheus": {
        "metrics.exporter": "prometheus",
        "metrics.prometheus.host": "127.0.0.1",
        "metrics.prometheus.port": "0",
    },
}
KEYS = {
    "otlp": ["metrics.otlp.interval", "metrics.otlp.timeout"],
    "prometheus": ["metrics.prometheus.port"],
}


def cases() -> list[Any]:
    return [
        pytest.param(backend, key, value, id=f"{key}-{value!r}")
        for backend, keys in KEYS.items()
        for key in keys
        for value in BAD_VALUES
    ]


@pytest.mark.parametrize("backend", sorted(GOOD))
def test_the_good_configuration_is_accepted(backend: str) -> None:
    metrics_client_from_config(GOOD[backend], environ=ENVIRON)


@pytest.mark.parametrize(("backend", "key", "value"), cases())
def test_a_bad_number_names_its_key(backend: str, key: str, value: Any) -> None:
    raw = {**GOOD[backend], key: value}
    if value == "":
        absent = {name: text for name, text in GOOD[backend].items() if name != key}
        metrics_client_from_config(raw, environ=ENVIRON)
        metrics_client_from_config(absent, environ=ENVIRON)
        return
    with pytest.raises(ConfigurationError) as info:
        metrics_client_from_config(raw, environ=ENVIRON)
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith(f"{key}: ")
    assert "\n" not in message and len(message) < 200
