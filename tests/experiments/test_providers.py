"""parse_experiment and the experiment providers: r2, feature_flag, forced_variant, simple."""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

import pytest

from baseplate.experiments.providers import (
    ISO_DATE_FMT,
    FeatureFlag,
    ForcedVariantExperiment,
    R2Experiment,
    SimpleExperiment,
    parse_experiment,
)

from .conftest import DAY, r2_config, reference_bucket, simple_config


def find_user(seed: str, low: int, high: int) -> str:
    """A user id whose bucket for ``seed`` is in [low, high)."""
    for i in range(100000):
        user = f"t2_{i}"
        if low <= reference_bucket(seed, user) < high:
            return user
    raise AssertionError("no such user")


# parse_experiment


def test_types_map_to_providers() -> None:
    assert type(parse_experiment(r2_config())) is R2Experiment
    flag = parse_experiment(r2_config(experiment_type="feature_flag", variants={"active": 10}))
    assert type(flag) is FeatureFlag
    for experiment_type, variants in [
        ("single_variant", [{"name": "a", "size": 0.1}, {"name": "b", "size": 0.1}]),
        ("multi_variant", [{"name": n, "size": 0.1} for n in "abc"]),
        ("feature_rollout", [{"name": "a", "size": 0.1}]),
        ("SINGLE_VARIANT", [{"name": "a", "size": 0.1}, {"name": "b", "size": 0.1}]),
    ]:
        config = simple_config(experiment_type=experiment_type, variants=variants)
        assert type(parse_experiment(config)) is SimpleExperiment


def test_experiment_describes_itself_for_events() -> None:
    experiment = parse_experiment(r2_config(name="test"))

    assert (experiment.id, experiment.name, experiment.owner, experiment.version) == (
        1,
        "test",
        "test_owner",
        "1",
    )
    assert experiment.should_log_bucketing()


def test_unknown_type_is_disabled_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    config = r2_config(name="mystery", experiment_type="quantum")

    experiment = parse_experiment(config)

    assert isinstance(experiment, ForcedVariantExperiment)
    assert experiment.variant(user_id="t2_1") is None
    assert not experiment.should_log_bucketing()
    assert "unknown type <quantum>" in caplog.text
    assert experiment.name == "mystery"


@pytest.mark.parametrize(
    "make",
    [
        lambda: r2_config(variants={"a": 50, "b": 50}, targeting={"logged_in": [True]}),
        lambda: simple_config(variants=[{"name": "a", "size": 0.5}, {"name": "b", "size": 0.5}]),
    ],
)
def test_disabled_or_out_of_window_experiments_choose_nothing(make: Any) -> None:
    def chosen(config: dict[str, Any]) -> set[Any]:
        experiment = parse_experiment(config)
        return {experiment.variant(user_id=f"t2_{i}", logged_in=True) for i in range(100)}

    assert chosen(make()) == {"a", "b"}
    for changes in [
        {"enabled": False},
        {"start_ts": time.time() + DAY},
        {"stop_ts": time.time() - DAY},
    ]:
        config = make()
        config.update(changes)
        assert chosen(config) == {None}


def test_global_override_forces_a_variant() -> None:
    config = simple_config()
    config["global_override"] = "variant_2"
    experiment = parse_experiment(config)
    assert isinstance(experiment, ForcedVariantExperiment)
    assert experiment.variant(user_id="t2_1") == "variant_2"
    assert not experiment.should_log_bucketing()

    config["global_override"] = None
    assert parse_experiment(config).variant(user_id="t2_1") is None


def test_expires_is_accepted_but_deprecated() -> None:
    tomorrow = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2)
    config = r2_config(targeting={"logged_in": [True]}, variants={"a": 50, "b": 50})
    del config["start_ts"], config["stop_ts"]
    config["expires"] = tomorrow.strftime(ISO_DATE_FMT)

    with pytest.warns(DeprecationWarning, match="expires"):
        experiment = parse_experiment(config)

    assert experiment.variant(user_id="t2_1", logged_in=True) in ("a", "b")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "1"}, "id must be an integer"),
        ({"id": True}, "id must be an integer"),
        ({"name": None}, "name"),
        ({"start_ts": None}, "start_ts"),
        ({"stop_ts": "tomorrow"}, "start_ts and stop_ts must be numbers"),
        ({"experiment": None}, "experiment must be an object"),
        ({"expires": "someday", "start_ts": None}, "expires must be a date"),
    ],
)
def test_malformed_base_config_names_the_key(change: dict[str, Any], message: str) -> None:
    config = r2_config()
    config.update(change)
    with pytest.raises(ValueError, match=message):
        parse_experiment(config)


def test_non_object_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="must be an object"):
        parse_experiment(["not", "an", "object"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("experiment", "message"),
    [
        ({"variants": None}, "variants must be a non-empty object"),
        ({"variants": {}}, "variants must be a non-empty object"),
        ({"variants": {"a": "ten"}}, "variants.a must be a non-negative percentage"),
        ({"variants": {"a": 10}, "targeting": {"logged_in": True}}, "targeting.logged_in"),
        ({"variants": {"a": 10}, "overrides": {"user_id": ["t2_1"]}}, "overrides.user_id"),
        ({"variants": {"a": 10}, "targeting": {"__case_sensitive__": "x"}}, "__case_sensitive__"),
    ],
)
def test_malformed_r2_config_names_the_key(experiment: dict[str, Any], message: str) -> None:
    config = r2_config()
    config["experiment"] = experiment
    with pytest.raises(ValueError, match=message):
        parse_experiment(config)


def test_missing_r2_variants_is_reported() -> None:
    config = r2_config()
    config["experiment"] = {}
    with pytest.raises(ValueError, match="experiment.variants is missing"):
        parse_experiment(config)


def test_feature_flag_only_allows_active() -> None:
    config = r2_config(experiment_type="feature_flag", variants={"active": 10, "other": 5})
    with pytest.raises(ValueError, match="only contain 'active'"):
        parse_experiment(config)


@pytest.mark.parametrize(
    ("experiment_type", "variants", "message"),
    [
        ("single_variant", [{"name": "a", "size": 0.1}], "exactly two variants"),
        ("single_variant", [{"name": "a", "size": 0.6}, {"name": "b", "size": 0.6}], "add up"),
        ("single_variant", [{"name": "a"}, {"name": "b", "size": 0.1}], "'a' has no size"),
        ("multi_variant", [{"name": "a", "size": 0.1}] * 2, "three or more"),
        ("multi_variant", [{"name": n, "size": 0.5} for n in "abc"], "greater than 100%"),
        ("feature_rollout", [{"name": "a", "size": 1.5}], "between 0 and 1"),
        ("feature_rollout", [], "exactly one variant"),
        ("feature_rollout", "on", "must be a list"),
        ("feature_rollout", [{"size": 0.5}], r"variants\[0\].name"),
    ],
)
def test_malformed_variants_name_the_problem(
    experiment_type: str, variants: Any, message: str
) -> None:
    config = simple_config(experiment_type=experiment_type, variants=variants)
    with pytest.raises(ValueError, match=message):
        parse_experiment(config)


def test_simple_experiment_requires_experiment_version() -> None:
    config = simple_config()
    del config["experiment"]["experiment_version"]
    with pytest.raises(ValueError, match="experiment_version"):
        parse_experiment(config)


# r2 and feature flags


def test_r2_without_targeting_matches_nobody() -> None:
    experiment = parse_experiment(r2_config(variants={"a": 50, "b": 50}))
    assert all(experiment.variant(user_id=f"t2_{i}", logged_in=True) is None for i in range(100))


def test_r2_targeting_is_case_insensitive_unless_declared() -> None:
    experiment = parse_experiment(
        r2_config(
            variants={"a": 50, "b": 50},
            targeting={"Country": ["US"], "sr": ["Pics"], "__case_sensitive__": ["sr"]},
        )
    )

    assert experiment.variant(user_id="t2_1", COUNTRY="us") in ("a", "b")
    assert experiment.variant(user_id="t2_1", country=["de", "Us"]) in ("a", "b")
    assert experiment.variant(user_id="t2_1", sr="Pics") in ("a", "b")
    assert experiment.variant(user_id="t2_1", sr="pics") is None
    assert experiment.variant(user_id="t2_1", country="de") is None


def test_r2_overrides_win_and_must_name_a_variant() -> None:
    experiment = parse_experiment(
        r2_config(
            variants={"larger": 5, "smaller": 10},
            targeting={"logged_in": [True]},
            overrides={
                "url_features": {"test_larger": "larger", "bogus": "nonexistent"},
                "logged_in": {True: "smaller"},
            },
        )
    )

    # Overrides need no bucketing value.
    assert experiment.variant(url_features=["x", "TEST_LARGER"]) == "larger"
    assert experiment.variant(logged_in=True) == "smaller"
    assert experiment.variant(url_features="bogus") is None


def test_r2_newer_than_limits_logged_in_targeting() -> None:
    now = time.time()
    experiment = parse_experiment(
        r2_config(variants={"a": 50, "b": 50}, targeting={"logged_in": [True]}, newer_than=now - 10)
    )

    assert experiment.variant(user_id="t2_1", logged_in=True) is None
    assert experiment.variant(user_id="t2_1", logged_in=True, user_created=now - 20) is None
    assert experiment.variant(user_id="t2_1", logged_in=True, user_created=now) in ("a", "b")
    assert experiment.variant(user_id="t2_1", logged_in=True, created=now) in ("a", "b")


def test_r2_unique_id_and_missing_bucket_value() -> None:
    experiment = parse_experiment(r2_config(targeting={"logged_in": [True]}))

    assert experiment.get_unique_id(user_id="t2_1") == "test:user_id:t2_1"
    assert experiment.get_unique_id(logged_in=True) is None
    assert experiment.variant(logged_in=True) is None
    assert experiment.variant(user_id=None, logged_in=True) is None


def test_r2_variant_sizes_are_capped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    experiment = parse_experiment(r2_config(variants={"a": 49, "b": 51}))
    assert isinstance(experiment, R2Experiment)

    chosen = [experiment._choose_variant(bucket) for bucket in range(1000)]

    assert (chosen.count("a"), chosen.count("b")) == (490, 500)
    assert "exceeds the allowable percentage" in caplog.text


def test_feature_flag_never_logs_bucketing() -> None:
    flag = parse_experiment(
        r2_config(
            experiment_type="feature_flag",
            variants={"active": 100},
            targeting={"logged_in": [True]},
        )
    )
    assert flag.variant(user_id="t2_1", logged_in=True) == "active"
    assert not flag.should_log_bucketing()
    assert flag.get_unique_id(user_id="t2_1") == "test:user_id:t2_1"


# simple experiments


def test_simple_targeting_and_overrides() -> None:
    experiment = parse_experiment(
        simple_config(
            name="targeted",
            variants=[{"name": "variant_1", "size": 0.5}, {"name": "variant_2", "size": 0.5}],
            targeting={"EQ": {"field": "is_mod", "value": True}},
            overrides=[
                {"variant_2": {"EQ": {"field": "user_id", "values": ["t2_special"]}}},
                "not an override",
                {"variant_1": {"BOGUS": {}}},
            ],
        )
    )
    seed = "1.targeted.None"
    low_user = find_user(seed, 0, 500)

    assert experiment.variant(user_id=low_user, is_mod=True) == "variant_1"
    assert experiment.variant(user_id=low_user, is_mod=False) is None
    assert experiment.variant(user_id="t2_special") == "variant_2"


def test_simple_malformed_targeting_targets_nobody(caplog: pytest.LogCaptureFixture) -> None:
    experiment = parse_experiment(
        simple_config(
            variants=[{"name": "variant_1", "size": 0.5}, {"name": "variant_2", "size": 0.5}],
            targeting={"EQ": {"field": "is_mod"}},
            overrides={"variant_1": {"OVERRIDE": True}},
        )
    )

    assert all(experiment.variant(user_id=f"t2_{i}", is_mod=True) is None for i in range(100))
    assert "invalid targeting" in caplog.text
    assert "overrides must be a list" in caplog.text


def test_simple_bucket_val_and_logging_flag() -> None:
    experiment = parse_experiment(
        simple_config(
            variants=[{"name": "on", "size": 1.0}],
            experiment_type="feature_rollout",
            bucket_val="device_id",
            log_bucketing=False,
        )
    )

    assert experiment.variant(user_id="t2_1") is None
    assert experiment.variant(device_id="d1") == "on"
    assert experiment.get_unique_id(device_id="d1") == "test_experiment:device_id:d1"
    assert not experiment.should_log_bucketing()


def test_simple_experiment_stops_at_stop_ts(monkeypatch: pytest.MonkeyPatch) -> None:
    config = simple_config(
        variants=[{"name": "on", "size": 1.0}], experiment_type="feature_rollout"
    )
    experiment = parse_experiment(config)
    assert experiment.variant(user_id="t2_1") == "on"

    monkeypatch.setattr("time.time", lambda: config["stop_ts"] + 1)
    assert experiment.variant(user_id="t2_1") is None


def test_forced_variant() -> None:
    experiment = ForcedVariantExperiment("x")
    assert experiment.variant() == "x"
    assert experiment.get_unique_id(user_id="t2_1") is None
    assert not experiment.should_log_bucketing()
