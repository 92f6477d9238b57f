"""The experiments client: a watched config file, per-request variants and events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from baseplate import core
from baseplate.config import ConfigurationError
from baseplate.core import ServerSpan
from baseplate.experiments import (
    EventType,
    Experiments,
    ExperimentsContextFactory,
    experiments_client_from_config,
)
from baseplate.file_watcher import WatchedFileNotAvailableError

from .conftest import (
    ExperimentsFile,
    RecordingLogger,
    r2_config,
    reference_bucket,
    reference_r2_variant,
    simple_config,
)

NewRequest = Callable[[], Experiments]

EVERYONE = [{"name": "variant_1", "size": 0.5}, {"name": "variant_2", "size": 0.5}]


def expected_single_variant(seed: str, user: str) -> str:
    return "variant_1" if reference_bucket(seed, user) < 500 else "variant_2"


class User:
    """What the edge request context's user offers experiments."""

    def __init__(self, user_id: str, roles: Any = ("admin",)) -> None:
        self.user_id = user_id
        self._roles = roles

    def event_fields(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "logged_in": True, "cookie_created_timestamp": 10000}

    @property
    def roles(self) -> set[str]:
        if self._roles is None:
            raise RuntimeError("no authentication")
        return set(self._roles)


def test_variant_logs_a_bucketing_event(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    experiments_file.write({"exp": simple_config(name="exp", variants=EVERYONE)})

    experiments = new_request()
    variant = experiments.variant("exp", user_id="t2_1", logged_in=True, app_name="r2")

    assert variant == expected_single_variant("1.exp.None", "t2_1")
    (event,) = event_logger.events
    assert event["variant"] == variant
    assert event["event_type"] is EventType.BUCKET
    assert event["user_id"] == "t2_1"
    assert event["logged_in"] is True
    assert event["app_name"] == "r2"
    assert event["cookie_created_timestamp"] is None
    assert event["inputs"] == {"user_id": "t2_1", "logged_in": True, "app_name": "r2"}
    assert isinstance(event["span"], ServerSpan)
    experiment = event["experiment"]
    assert (experiment.id, experiment.name, experiment.owner, experiment.version) == (
        1,
        "exp",
        "test",
        1,
    )


def test_bucketing_events_once_per_request_and_user(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    experiments_file.write({"exp": simple_config(name="exp", variants=EVERYONE)})

    experiments = new_request()
    for _ in range(3):
        experiments.variant("exp", user_id="t2_1")
    assert len(event_logger.events) == 1

    experiments.variant("exp", user_id="t2_2")
    assert len(event_logger.events) == 2

    new_request().variant("exp", user_id="t2_1")
    assert len(event_logger.events) == 3


def test_no_second_event_when_an_override_changes_the_variant(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    experiments_file.write(
        {
            "buttons": r2_config(
                name="buttons",
                variants={"blue": 30, "green": 30, "red": 30},
                targeting={"logged_in": [True]},
                overrides={"url_features": {"buttons_red": "red"}},
            )
        }
    )
    experiments = new_request()
    bucketed = experiments.variant("buttons", user_id="t2_1", logged_in=True)
    assert bucketed in ("blue", "green")  # t2_1 is not bucketed into red
    assert (
        experiments.variant("buttons", user_id="t2_1", logged_in=True, url_features=["buttons_red"])
        == "red"
    )
    # one event per user and experiment in a request: the one for the first variant
    assert [event["variant"] for event in event_logger.events] == [bucketed]


def test_bucketing_event_override(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    experiments_file.write({"exp": simple_config(name="exp", variants=EVERYONE)})
    experiments = new_request()

    assert experiments.variant("exp", user_id="t2_1", bucketing_event_override=False)
    assert event_logger.events == []

    experiments.variant("exp", user_id="t2_1", bucketing_event_override=True)
    experiments.variant("exp", user_id="t2_1", bucketing_event_override=True)
    assert len(event_logger.events) == 1


def test_no_event_without_variant_bucketing_value_or_logging(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    experiments_file.write(
        {
            "nobody": simple_config(name="nobody", targeting={"OVERRIDE": False}),
            "flag": r2_config(
                name="flag",
                experiment_type="feature_flag",
                variants={"active": 100},
                targeting={"logged_in": [True]},
            ),
            "overridden": r2_config(
                name="overridden", overrides={"user_name": {"gary": "control_1"}}
            ),
            "quiet": simple_config(name="quiet", variants=EVERYONE, log_bucketing=False),
        }
    )
    experiments = new_request()

    assert experiments.variant("nobody", user_id="t2_1") is None
    assert experiments.variant("flag", user_id="t2_1", logged_in=True) == "active"
    assert experiments.variant("overridden", user_name="gary") == "control_1"
    assert experiments.variant("quiet", user_id="t2_1") is not None
    assert event_logger.events == []


def test_expose_logs_an_exposure_event(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    experiments_file.write({"exp": r2_config(name="exp")})
    experiments = new_request()

    experiments.expose("exp", "control_1", user=User("t2_5"), app_name="r2")
    experiments.expose("missing", "control_1", user=User("t2_5"))

    (event,) = event_logger.events
    assert event["event_type"] is EventType.EXPOSE
    assert event["variant"] == "control_1"
    assert event["user_id"] == "t2_5"
    assert event["logged_in"] is True
    assert event["cookie_created_timestamp"] == 10000
    assert event["experiment"].name == "exp"


def test_user_fields_and_roles_are_inputs(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    experiments_file.write(
        {
            "admins": simple_config(
                name="admins",
                experiment_type="feature_rollout",
                variants=[{"name": "on", "size": 1.0}],
                targeting={"EQ": {"field": "user_roles", "value": ["admin"]}},
            )
        }
    )
    experiments = new_request()

    assert experiments.variant("admins", user=User("t2_1")) == "on"
    assert experiments.variant("admins", user=User("t2_2", roles=())) is None
    assert experiments.variant("admins", user=User("t2_3", roles=None)) is None
    assert event_logger.events[0]["cookie_created_timestamp"] == 10000
    assert event_logger.events[0]["inputs"]["user_roles"] == ["admin"]


def test_config_changes_are_picked_up(
    experiments_file: ExperimentsFile, new_request: NewRequest
) -> None:
    rollout = {"experiment_type": "feature_rollout", "name": "rollout"}
    experiments_file.write(
        {"rollout": simple_config(**rollout, variants=[{"name": "on", "size": 0.0}])}
    )
    assert new_request().variant("rollout", user_id="t2_1") is None

    experiments_file.write(
        {"rollout": simple_config(**rollout, variants=[{"name": "on", "size": 1.0}])}
    )
    assert new_request().variant("rollout", user_id="t2_1") == "on"


def test_missing_then_bad_then_good_then_bad_file(
    experiments_file: ExperimentsFile, new_request: NewRequest, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"exp": simple_config(name="exp", variants=EVERYONE)}

    assert new_request().variant("exp", user_id="t2_1") is None
    assert "Experiment config unavailable" in caplog.text

    experiments_file.write(b"{not json")
    assert new_request().variant("exp", user_id="t2_1") is None

    experiments_file.write(good)
    assert new_request().variant("exp", user_id="t2_1") is not None

    # A broken update keeps the last good experiments.
    experiments_file.write(b"[truncated")
    assert new_request().variant("exp", user_id="t2_1") is not None


def test_config_must_be_an_object(
    experiments_file: ExperimentsFile, new_request: NewRequest, caplog: pytest.LogCaptureFixture
) -> None:
    experiments_file.write(["exp"])
    experiments = new_request()

    assert experiments.variant("exp", user_id="t2_1") is None
    assert experiments.get_all_experiment_names() == []
    assert "must be a JSON object" in caplog.text


def test_malformed_experiment_disables_only_itself(
    experiments_file: ExperimentsFile,
    new_request: NewRequest,
    event_logger: RecordingLogger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken_id = simple_config(name="broken_id", variants=EVERYONE)
    broken_id["id"] = "1"
    no_times = r2_config(name="no_times")
    del no_times["start_ts"]
    experiments_file.write(
        {
            "good": simple_config(name="good", variants=EVERYONE),
            "broken_id": broken_id,
            "no_times": no_times,
            "bad_variants": simple_config(name="bad_variants", variants=[{"name": "x"}]),
            "not_a_dict": "surprise",
            "unknown": r2_config(name="unknown", experiment_type="quantum"),
        }
    )
    experiments = new_request()

    assert experiments.variant("good", user_id="t2_1") is not None
    for name in ["broken_id", "no_times", "bad_variants", "not_a_dict", "absent"]:
        assert experiments.variant(name, user_id="t2_1") is None
        experiments.expose(name, "x", user_id="t2_1")
    assert experiments.variant("unknown", user_id="t2_1") is None
    assert experiments.is_valid_experiment("good")
    assert not experiments.is_valid_experiment("broken_id")
    assert not experiments.is_valid_experiment("absent")
    assert experiments.is_valid_experiment("unknown")  # known to be disabled
    assert sorted(experiments.get_all_experiment_names()) == ["good", "unknown"]
    assert "Invalid configuration for experiment 'broken_id'" in caplog.text
    assert "id must be an integer" in caplog.text
    assert [event["experiment"].name for event in event_logger.events] == ["good"]


def test_failures_inside_variant_and_logger_do_not_raise(
    experiments_file: ExperimentsFile,
    new_request: NewRequest,
    event_logger: RecordingLogger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("cannot print")

    def broken_log(**kwargs: Any) -> None:
        raise RuntimeError("event pipeline down")

    experiments_file.write({"exp": simple_config(name="exp", variants=EVERYONE)})
    experiments = new_request()

    assert experiments.variant("exp", user_id=Unprintable()) is None
    assert "Could not choose a variant of experiment 'exp'" in caplog.text

    event_logger.log = broken_log  # type: ignore[method-assign]
    assert experiments.variant("exp", user_id="t2_1") is not None
    assert "Could not log choose event" in caplog.text


def test_debug_logger_is_the_default(
    experiments_file: ExperimentsFile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="baseplate.events.queue")
    experiments_file.write({"exp": simple_config(name="exp", variants=EVERYONE)})
    factory = ExperimentsContextFactory(str(experiments_file.path))

    experiments = factory.make_object_for_context("experiments", None)
    experiments.variant("exp", user_id="t2_1")

    assert "Would send event" in caplog.text


def test_client_from_config(
    experiments_file: ExperimentsFile, event_logger: RecordingLogger
) -> None:
    experiments_file.write({"exp": simple_config(name="exp", variants=EVERYONE)})

    factory = experiments_client_from_config(
        {"experiments.path": str(experiments_file.path)}, event_logger
    )
    experiments = factory.make_object_for_context("experiments", None)

    assert isinstance(factory, ExperimentsContextFactory)
    assert experiments.variant("exp", user_id="t2_1") == expected_single_variant(
        "1.exp.None", "t2_1"
    )
    assert len(event_logger.events) == 1


def test_client_from_config_with_prefix_and_timeout(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    config = {"r2_experiments.path": str(missing), "r2_experiments.timeout": "50 milliseconds"}

    with pytest.raises(WatchedFileNotAvailableError):
        experiments_client_from_config(config, None, prefix="r2_experiments.")


def test_client_from_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigurationError, match="experiments.timeout"):
        experiments_client_from_config(
            {"experiments.path": "/tmp/x", "experiments.timeout": "soon"}, None
        )
    with pytest.raises(ValueError, match="prefix"):
        experiments_client_from_config({}, None, prefix="experiments")


def test_baseplate_user_from_the_edge_context(
    experiments_file: ExperimentsFile, new_request: NewRequest, event_logger: RecordingLogger
) -> None:
    # A validated token needs a JWT signed by the authentication service; the user only
    # reads these two attributes of it.
    token = SimpleNamespace(subject="t2_1", user_roles={"employee"})
    user = core.User(authentication_token=token, loid="t2_loid", cookie_created_ms=10000)
    experiments_file.write(
        {"exp": r2_config(name="exp", variants={"a": 50, "b": 50}, targeting={"logged_in": [True]})}
    )

    variant = new_request().variant("exp", user=user, app_name="r2")

    assert variant == reference_r2_variant("exp", {"a": 50, "b": 50}, "t2_1")
    (event,) = event_logger.events
    assert (event["user_id"], event["logged_in"], event["cookie_created_timestamp"]) == (
        "t2_1",
        True,
        10000,
    )
    assert event["inputs"]["user_roles"] == ["employee"]
