"""Tests for baseplate.retry.RetryPolicy and its attempt, budget and backoff constraints."""

from __future__ import annotations

import itertools

import pytest

from baseplate.retry import (
    ExponentialBackoffRetryPolicy,
    IndefiniteRetryPolicy,
    MaximumAttemptsRetryPolicy,
    RetryPolicy,
    TimeBudgetRetryPolicy,
)


class FakeClock:
    """Replaces time.time/time.sleep so tests neither wait nor depend on machine load."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("time.time", fake.time)
    monkeypatch.setattr("time.sleep", fake.sleep)
    return fake


def test_documented_usage(clock: FakeClock) -> None:
    calls = []
    for time_remaining in RetryPolicy.new(attempts=3):
        calls.append(time_remaining)
    assert calls == [None, None, None]

    attempts = 0
    for _ in RetryPolicy.new(attempts=3):
        attempts += 1
        if attempts == 2:
            break
    else:
        pytest.fail("should have succeeded on the second attempt")
    assert attempts == 2


def test_unconstrained_policy_is_indefinite() -> None:
    policy = RetryPolicy.new()
    assert isinstance(policy, IndefiniteRetryPolicy)
    assert list(itertools.islice(policy, 50)) == [None] * 50


def test_yield_attempts_is_iter() -> None:
    policy = RetryPolicy.new(attempts=2)
    assert list(policy.yield_attempts()) == list(policy) == [None, None]


@pytest.mark.parametrize("attempts", [0, 1, 2, 5])
def test_maximum_attempts(attempts: int) -> None:
    assert len(list(RetryPolicy.new(attempts=attempts))) == attempts


def test_negative_arguments_rejected() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy.new(attempts=-1)
    with pytest.raises(ValueError, match="budget"):
        RetryPolicy.new(budget=-1)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy.new(backoff=-0.1)


def test_time_budget(clock: FakeClock) -> None:
    retries = iter(TimeBudgetRetryPolicy(IndefiniteRetryPolicy(), budget=5))
    assert next(retries) == 5
    clock.now = 3
    for _ in range(10):
        assert next(retries) == 2
    clock.now = 7
    with pytest.raises(StopIteration):
        next(retries)


def test_time_budget_always_executes_at_least_once(clock: FakeClock) -> None:
    retries = iter(RetryPolicy.new(budget=0))
    assert next(retries) == 0
    with pytest.raises(StopIteration):
        next(retries)


def test_budget_and_attempts(clock: FakeClock) -> None:
    seen = []
    for time_remaining in RetryPolicy.new(attempts=3, budget=10):
        seen.append(time_remaining)
        clock.now += 1
    assert seen == [10, 9, 8]


def test_exponential_backoff(clock: FakeClock) -> None:
    retries = iter(ExponentialBackoffRetryPolicy(IndefiniteRetryPolicy(), base=0.1))
    next(retries)
    assert clock.sleeps == []
    for _ in range(4):
        next(retries)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_attempts_and_backoff(clock: FakeClock) -> None:
    assert list(RetryPolicy.new(backoff=0.2, attempts=3)) == [None, None, None]
    # no sleep after the last attempt
    assert clock.sleeps == pytest.approx([0.2, 0.4])


def test_budget_caps_backoff(clock: FakeClock) -> None:
    retries = iter(RetryPolicy.new(backoff=0.1, budget=1))
    assert next(retries) == pytest.approx(1)
    assert clock.sleeps == []

    clock.now = 0.5
    assert next(retries) == pytest.approx(0.4)
    assert clock.sleeps[-1] == pytest.approx(0.1)

    clock.now = 0.9
    assert next(retries) == pytest.approx(0)
    assert clock.sleeps[-1] == pytest.approx(0.1)

    clock.now = 1
    with pytest.raises(StopIteration):
        next(retries)


def test_remaining_time_shrinks_to_budget(clock: FakeClock) -> None:
    remaining = [r for r in RetryPolicy.new(budget=1, backoff=0.1) if r is not None]
    # 1, then sleeps of 0.1, 0.2, 0.4 and a final one capped by what was left
    assert remaining[0] == 1
    assert all(later < earlier for earlier, later in itertools.pairwise(remaining))
    assert sum(clock.sleeps) == pytest.approx(1, abs=1e-9)


def test_real_clock_backoff_sleeps() -> None:
    # real time.sleep: two tiny backoffs actually elapse
    seen = list(RetryPolicy.new(attempts=3, budget=60, backoff=0.001))
    assert len(seen) == 3
    assert seen[0] == 60
    assert all(remaining is not None and 0 < remaining < 60 for remaining in seen[1:])


def test_wrapped_policies_compose() -> None:
    policy = MaximumAttemptsRetryPolicy(IndefiniteRetryPolicy(), attempts=4)
    assert list(policy) == [None] * 4
