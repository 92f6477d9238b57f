"""Bucketing gives the same variant as every other baseplate for the same user.

Known bucket values are recomputed here from the definition (sha1 of seed + value, as a
hex integer, mod 1000) rather than taken from the code under test.
"""

from __future__ import annotations

from typing import Any, Optional

from hypothesis import given, settings
from hypothesis import strategies as st

from baseplate.experiments.providers import parse_experiment
from baseplate.experiments.providers.base import calculate_bucket
from baseplate.experiments.providers.r2 import R2Experiment
from baseplate.experiments.providers.simple_experiment import SimpleExperiment
from baseplate.experiments.variant_sets import (
    MultiVariantSet,
    RolloutVariantSet,
    SingleVariantSet,
)

from .conftest import r2_config, reference_bucket, reference_r2_variant, simple_config

USERS = [f"t2_{i}" for i in range(400)]


def test_known_r2_buckets() -> None:
    experiment = parse_experiment(r2_config(name="test"))
    seeded = parse_experiment(r2_config(name="test", seed="test-seed"))
    assert isinstance(experiment, R2Experiment) and isinstance(seeded, R2Experiment)

    # Values also used by reddit's own baseplate tests.
    assert reference_bucket("test", "t2_1") == 236
    assert reference_bucket("test-seed", "t2_1") == 595
    assert experiment._calculate_bucket("t2_1") == 236
    assert seeded._calculate_bucket("t2_1") == 595


def test_known_simple_experiment_buckets() -> None:
    experiment = parse_experiment(simple_config(name="test_experiment"))
    seeded = parse_experiment(simple_config(name="test_experiment", bucket_seed="some new seed"))
    shuffled = parse_experiment(simple_config(name="test_experiment", shuffle_version=2))
    assert isinstance(experiment, SimpleExperiment)
    assert isinstance(seeded, SimpleExperiment) and isinstance(shuffled, SimpleExperiment)

    assert experiment.seed == "1.test_experiment.None"
    assert shuffled.seed == "1.test_experiment.2"
    assert reference_bucket("1.test_experiment.None", "t2_1") == 867
    assert reference_bucket("some new seed", "t2_1") == 924
    assert experiment._calculate_bucket("t2_1") == 867
    assert seeded._calculate_bucket("t2_1") == 924
    assert shuffled._calculate_bucket("t2_1") == reference_bucket("1.test_experiment.2", "t2_1")


def test_r2_variants_match_the_reference_for_every_user() -> None:
    variants = {"larger": 5, "smaller": 10, "control_1": 10, "control_2": 10}
    experiment = parse_experiment(
        r2_config(name="bucketing", variants=variants, targeting={"logged_in": [True]})
    )

    chosen = {user: experiment.variant(user_id=user, logged_in=True) for user in USERS}

    assert chosen == {user: reference_r2_variant("bucketing", variants, user) for user in USERS}
    assert set(chosen.values()) == {None, "larger", "smaller", "control_1", "control_2"}


def test_r2_bucket_val_other_than_user_id() -> None:
    variants = {"active": 50}
    experiment = parse_experiment(
        r2_config(
            name="links",
            experiment_type="feature_flag",
            variants=variants,
            bucket_val="content_id",
            targeting={"content_type": ["link"]},
        )
    )

    for i in range(100):
        content_id = f"t3_{i}"
        expected = reference_r2_variant("links", variants, content_id)
        assert experiment.variant(content_id=content_id, content_type="link") == expected


def reference_single_variant(seed: str, sizes: tuple[float, float], user: str) -> Optional[str]:
    """The first variant from the bottom of the buckets, the second from the top."""
    bucket = reference_bucket(seed, user)
    if bucket < int(sizes[0] * 1000):
        return "variant_1"
    if bucket >= 1000 - int(sizes[1] * 1000):
        return "variant_2"
    return None


def test_single_variant_matches_the_reference_for_every_user() -> None:
    experiment = parse_experiment(
        simple_config(
            name="single",
            variants=[{"name": "variant_1", "size": 0.3}, {"name": "variant_2", "size": 0.25}],
        )
    )

    for user in USERS:
        expected = reference_single_variant("1.single.None", (0.3, 0.25), user)
        assert experiment.variant(user_id=user) == expected


def test_multi_variant_and_rollout_match_the_reference() -> None:
    multi = parse_experiment(
        simple_config(
            name="multi",
            experiment_type="multi_variant",
            bucket_seed="fixed-seed",
            variants=[
                {"name": "a", "size": 0.2},
                {"name": "b", "size": 0.3},
                {"name": "c", "size": 0.1},
            ],
        )
    )
    rollout = parse_experiment(
        simple_config(
            name="rollout",
            experiment_type="feature_rollout",
            variants=[{"name": "on", "size": 0.45}],
        )
    )

    for user in USERS:
        bucket = reference_bucket("fixed-seed", user)
        expected = "a" if bucket < 200 else "b" if bucket < 500 else "c" if bucket < 600 else None
        assert multi.variant(user_id=user) == expected
        on = reference_bucket("1.rollout.None", user) < 450
        assert rollout.variant(user_id=user) == ("on" if on else None)


@settings(max_examples=200, deadline=None)
@given(seed=st.text(), value=st.text() | st.integers())
def test_bucket_is_sha1_of_seed_and_value(seed: str, value: Any) -> None:
    assert calculate_bucket(seed, value) == reference_bucket(seed, str(value))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), num_variants=st.integers(min_value=1, max_value=5))
def test_growing_r2_variants_never_moves_users(data: st.DataObject, num_variants: int) -> None:
    # Each variant stays within its cap of 1/n of the buckets (n variants).
    cap = 100.0 / num_variants
    names = [f"v{i}" for i in range(num_variants)]
    sizes = [data.draw(st.floats(0, cap)) for _ in names]
    grown = [size + data.draw(st.floats(0, 1)) * (cap - size) for size in sizes]
    small = parse_experiment(r2_config(variants=dict(zip(names, sizes, strict=True))))
    large = parse_experiment(r2_config(variants=dict(zip(names, grown, strict=True))))
    assert isinstance(small, R2Experiment) and isinstance(large, R2Experiment)

    for bucket in range(1000):
        before = small._choose_variant(bucket)
        if before is not None:
            assert large._choose_variant(bucket) == before


thousandths = st.integers(min_value=0, max_value=1000)


@settings(max_examples=200, deadline=None)
@given(first=thousandths, second=thousandths, grow_first=thousandths, grow_second=thousandths)
def test_growing_single_and_rollout_variants_never_moves_users(
    first: int, second: int, grow_first: int, grow_second: int
) -> None:
    # Sizes in thousandths, so that "grown" is never smaller than the original.
    second = min(second, 1000 - first)
    grown_first = min(first + grow_first, 1000 - second)
    grown_second = min(second + grow_second, 1000 - grown_first)

    def single(size_1: int, size_2: int) -> SingleVariantSet:
        return SingleVariantSet(
            [
                {"name": "variant_1", "size": size_1 / 1000},
                {"name": "variant_2", "size": size_2 / 1000},
            ]
        )

    small, large = single(first, second), single(grown_first, grown_second)
    rollout_small = RolloutVariantSet([{"name": "on", "size": first / 1000}])
    rollout_large = RolloutVariantSet([{"name": "on", "size": grown_first / 1000}])

    for bucket in range(1000):
        before = small.choose_variant(bucket)
        if before is not None:
            assert large.choose_variant(bucket) == before
        if rollout_small.choose_variant(bucket) is not None:
            assert rollout_large.choose_variant(bucket) == "on"


def test_multi_variant_sizes_are_exact() -> None:
    variant_set = MultiVariantSet(
        [{"name": "a", "size": 0.25}, {"name": "b", "size": 0.25}, {"name": "c", "size": 0.5}]
    )
    chosen = [variant_set.choose_variant(bucket) for bucket in range(1000)]
    assert (chosen.count("a"), chosen.count("b"), chosen.count("c")) == (250, 250, 500)
