"""Fixtures for the experiment tests: config builders, a watched config file, requests."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import pytest
from opentelemetry.sdk.trace import TracerProvider

from baseplate.core import Baseplate, RequestContext
from baseplate.events import EventLogger
from baseplate.experiments import Experiments, ExperimentsContextFactory

DAY = 24 * 60 * 60


def reference_bucket(seed: str, value: str, num_buckets: int = 1000) -> int:
    """The bucket, computed here independently: sha1(seed + value) as hex, mod buckets."""
    return int(hashlib.sha1((seed + value).encode("utf-8")).hexdigest(), 16) % num_buckets


def reference_r2_variant(seed: str, variants: dict[str, float], user: str) -> Optional[str]:
    """Variants take turns over buckets (by sorted name), each up to its percentage."""
    bucket = reference_bucket(seed, user)
    names = sorted(variants)
    candidate = names[bucket % len(names)]
    if bucket < int(variants[candidate] * len(names) * 10.0):
        return candidate
    return None


def r2_config(
    name: str = "test",
    experiment_type: str = "r2",
    **experiment: Any,
) -> dict[str, Any]:
    """A running legacy (r2 or feature_flag) experiment config."""
    experiment.setdefault("variants", {"control_1": 10, "control_2": 10})
    return {
        "id": 1,
        "name": name,
        "owner": "test_owner",
        "type": experiment_type,
        "version": "1",
        "start_ts": time.time() - DAY,
        "stop_ts": time.time() + DAY,
        "experiment": experiment,
    }


def simple_config(
    name: str = "test_experiment",
    experiment_type: str = "single_variant",
    **experiment: Any,
) -> dict[str, Any]:
    """A running simple experiment config."""
    experiment.setdefault(
        "variants",
        [{"name": "variant_1", "size": 0.1}, {"name": "variant_2", "size": 0.1}],
    )
    experiment.setdefault("experiment_version", 1)
    return {
        "id": 1,
        "name": name,
        "owner": "test",
        "type": experiment_type,
        "version": "1",
        "start_ts": time.time() - DAY,
        "stop_ts": time.time() + DAY,
        "enabled": True,
        "experiment": experiment,
    }


class RecordingLogger(EventLogger):
    """An event logger that keeps what it is asked to log."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def log(self, **kwargs: Any) -> None:
        self.events.append(kwargs)


@pytest.fixture
def event_logger() -> RecordingLogger:
    return RecordingLogger()


class ExperimentsFile:
    """The experiment config file, as the fetcher daemon would write it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime_ns = time.time_ns()

    def write(self, content: Any) -> None:
        """Write ``content`` (JSON-encoded unless bytes) with a newer mtime than before."""
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(data)
        # A whole second later than the last write, so that the change is seen on file
        # systems with coarse timestamps without the test having to sleep.
        self._mtime_ns += 1_000_000_000
        os.utime(temporary, ns=(self._mtime_ns, self._mtime_ns))
        os.replace(temporary, self.path)


@pytest.fixture
def experiments_file(tmp_path: Path) -> ExperimentsFile:
    return ExperimentsFile(tmp_path / "experiments.json")


@pytest.fixture
def new_request(
    experiments_file: ExperimentsFile, event_logger: RecordingLogger
) -> Callable[[], Experiments]:
    """Return a function starting a request whose context has ``experiments``.

    It goes through a real Baseplate: ``add_to_context`` and a server span.
    """
    baseplate = Baseplate(tracer_provider=TracerProvider())
    factory = ExperimentsContextFactory(str(experiments_file.path), event_logger)
    baseplate.add_to_context("experiments", factory)

    def start() -> Experiments:
        context = RequestContext()
        baseplate.make_server_span(context, "handler")
        experiments = context.experiments  # type: ignore[attr-defined]
        assert isinstance(experiments, Experiments)
        return experiments

    return start
