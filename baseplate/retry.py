"""Policies for retrying an operation safely.

.. note:: This module is a low-level helper; many client libraries have
   protocol-aware retry logic built in. Check your library before using this.

Each constraint (number of attempts, time budget, exponential backoff) is a policy
wrapping another policy; :meth:`RetryPolicy.new` stacks the ones asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator


class RetryPolicy:
    """A policy for retrying operations.

    Policies are meant to be used as an iterable::

        for time_remaining in RetryPolicy.new(attempts=3):
            try:
                some_operation.do(timeout=time_remaining)
                break
            except SomeError:
                pass
        else:
            raise MaxRetriesError
    """

    def yield_attempts(self) -> Iterator[float | None]:
        """Return an iterator which controls attempts.

        On each iteration, the iterator will yield the number of seconds left to
        retry, this should be used to set the timeout on the operation being carried
        out. If there is no maximum time remaining, :data:`None` is yielded instead.

        The iterable will raise :exc:`StopIteration` once the operation should not be
        retried any further.
        """
        raise NotImplementedError

    def __iter__(self) -> Iterator[float | None]:
        """Convenience alias for :meth:`yield_attempts`.

        This allows policies to be directly iterated over.
        """
        return self.yield_attempts()

    @staticmethod
    def new(
        attempts: int | None = None, budget: float | None = None, backoff: float | None = None
    ) -> RetryPolicy:
        """Create a new retry policy with the given constraints.

        :param attempts: The maximum number of times the operation can be attempted.
        :param budget: The maximum amount of time, in seconds, that the local service
            will wait for the operation to succeed.
        :param backoff: The base amount of time, in seconds, for exponential backoff
            between attempts. ``N`` in (``N * 2**attempts``).
        """
        policy: RetryPolicy = IndefiniteRetryPolicy()
        if attempts is not None:
            policy = MaximumAttemptsRetryPolicy(policy, attempts)
        if budget is not None:
            policy = TimeBudgetRetryPolicy(policy, budget)
        if backoff is not None:
            policy = ExponentialBackoffRetryPolicy(policy, backoff)
        return policy


class IndefiniteRetryPolicy(RetryPolicy):
    """Retry immediately, forever."""

    def yield_attempts(self) -> Iterator[float | None]:
        while True:
            yield None


class MaximumAttemptsRetryPolicy(RetryPolicy):
    """Constrain the total number of attempts."""

    def __init__(self, policy: RetryPolicy, attempts: int) -> None:
        if attempts < 0:
            raise ValueError(f"attempts must not be negative, got {attempts}")
        self.subpolicy = policy
        self.attempts = attempts

    def yield_attempts(self) -> Iterator[float | None]:
        if self.attempts == 0:
            return
        for attempt, time_remaining in enumerate(self.subpolicy, start=1):
            yield time_remaining
            if attempt >= self.attempts:
                return


class TimeBudgetRetryPolicy(RetryPolicy):
    """Constrain attempts to an overall time budget.

    The first attempt always happens and gets the whole budget; later attempts get
    what is left, and stop once nothing is.
    """

    def __init__(self, policy: RetryPolicy, budget: float) -> None:
        if budget < 0:
            raise ValueError(f"the time budget must not be negative, got {budget}")
        self.subpolicy = policy
        self.budget = budget

    def yield_attempts(self) -> Iterator[float | None]:
        # time.time (not monotonic) so that tests and callers can control the clock
        # the same way everywhere in baseplate.
        start = time.time()
        attempts = iter(self.subpolicy)
        if next(attempts, _EXHAUSTED) is _EXHAUSTED:
            return
        yield self.budget

        for _ in attempts:
            time_remaining = self.budget - (time.time() - start)
            if time_remaining <= 0:
                return
            yield time_remaining


class ExponentialBackoffRetryPolicy(RetryPolicy):
    """Sleep exponentially longer between attempts: ``base * 2**(n - 1)`` before retry n.

    The sleep never exceeds the time the wrapped policy says is left, and the time
    yielded to the caller is what remains after sleeping.
    """

    def __init__(self, policy: RetryPolicy, base: float) -> None:
        if base < 0:
            raise ValueError(f"the backoff must not be negative, got {base}")
        self.subpolicy = policy
        self.base = base

    def yield_attempts(self) -> Iterator[float | None]:
        for retry, time_remaining in enumerate(self.subpolicy):
            if retry > 0:
                delay = self.base * 2 ** (retry - 1)
                if time_remaining is not None:
                    delay = min(delay, time_remaining)
                    time_remaining -= delay
                time.sleep(delay)
            yield time_remaining


_EXHAUSTED = object()


__all__ = [
    "ExponentialBackoffRetryPolicy",
    "IndefiniteRetryPolicy",
    "MaximumAttemptsRetryPolicy",
    "RetryPolicy",
    "TimeBudgetRetryPolicy",
]
