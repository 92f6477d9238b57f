"""Tests for baseplate.random.WeightedLottery."""

from __future__ import annotations

import collections
import random as stdlib_random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseplate.random import WeightedLottery


def weight_c3(item: str) -> int:
    return 3 if item == "c" else 1


def test_documented_example() -> None:
    words = ["apple", "banana", "cantelope"]
    lottery = WeightedLottery(words, weight_key=len)
    assert lottery.pick() in words
    sample = lottery.sample(2)
    assert len(sample) == 2
    assert len(set(sample)) == 2
    assert set(sample) <= set(words)


@pytest.mark.parametrize(
    ("items", "weight_key", "message"),
    [
        ([], len, "empty"),
        (["a"], lambda i: -1, "non-negative"),
        (["a", "b"], lambda i: 0, "positive weight"),
    ],
)
def test_invalid_lotteries(items: list[str], weight_key: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        WeightedLottery(items, weight_key)  # type: ignore[arg-type]


def test_negative_weight_names_item() -> None:
    with pytest.raises(ValueError, match="'b'"):
        WeightedLottery(["a", "b"], lambda i: 1 if i == "a" else -2)


def test_pick_uses_cumulative_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    # pin the random draw to check which ticket wins
    lottery = WeightedLottery(["a", "b", "c", "d"], weight_c3)  # total 6
    for draw, expected in [(0.0, "a"), (0.2, "b"), (0.5, "c"), (0.8, "c"), (0.9, "d")]:
        monkeypatch.setattr("random.random", lambda draw=draw: draw)
        assert lottery.pick() == expected


def test_pick_accepts_iterator_and_skips_zero_weight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("random.random", lambda: 0.0)
    lottery = WeightedLottery((n for n in range(10)), lambda i: i)
    assert lottery.pick() == 1


def test_pick_distribution() -> None:
    rng_state = stdlib_random.getstate()
    stdlib_random.seed(1234)
    try:
        lottery = WeightedLottery(["a", "b", "c", "d"], lambda i: ord(i) - 96)
        counts = collections.Counter(lottery.pick() for _ in range(10000))
    finally:
        stdlib_random.setstate(rng_state)
    for item, expected in [("a", 1000), ("b", 2000), ("c", 3000), ("d", 4000)]:
        assert abs(counts[item] - expected) < 200


def test_sample_sizes() -> None:
    items = ["a", "b", "c", "d"]
    lottery = WeightedLottery(items, weight_c3)
    for k in range(len(items) + 1):
        sample = lottery.sample(k)
        assert len(sample) == k
        assert len(set(sample)) == k
    assert sorted(lottery.sample(4)) == items


def test_sample_errors() -> None:
    lottery = WeightedLottery(["a", "b", "c", "d"], weight_c3)
    with pytest.raises(ValueError, match="sample size"):
        lottery.sample(-1)
    with pytest.raises(ValueError, match="sample size"):
        lottery.sample(5)


def test_sample_terminates_with_constant_random(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("random.random", lambda: 0.5)
    lottery = WeightedLottery(["a", "b", "c", "d"], weight_c3)
    assert lottery.sample(2)[0] == "c"


def test_sample_prefers_heavy_items_and_zero_weight_last() -> None:
    weights = {"heavy": 9, "light": 1, "zero": 0}
    lottery = WeightedLottery(list(weights), weights.__getitem__)
    firsts = collections.Counter(lottery.sample(1)[0] for _ in range(2000))
    assert firsts["zero"] == 0
    assert firsts["heavy"] > firsts["light"] * 4
    for _ in range(200):
        assert lottery.sample(3)[-1] == "zero"
        assert "zero" not in lottery.sample(2)


@settings(max_examples=200, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=20).filter(
        any
    ),
    data=st.data(),
)
def test_sample_is_a_subset_without_duplicates(weights: list[int], data: st.DataObject) -> None:
    items = list(range(len(weights)))
    lottery = WeightedLottery(items, lambda i: weights[i])
    size = data.draw(st.integers(min_value=0, max_value=len(items)))
    sample = lottery.sample(size)
    assert len(sample) == len(set(sample)) == size
    positive = [i for i in items if weights[i] > 0]
    # weighted items are always chosen before any zero-weight item
    assert set(sample[: len(positive)]) <= set(positive)
    assert weights[lottery.pick()] > 0
