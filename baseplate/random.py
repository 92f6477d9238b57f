"""Extensions to the standard library :mod:`random` module: weighted random selection."""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class WeightedLottery(Generic[T]):
    """A lottery where items can have different chances of selection.

    Items will be picked with chance proportional to their weight relative to the sum
    of all weights, so the higher the weight, the higher the chance of being picked.

    :param items: A sequence of items to choose from.
    :param weight_key: A function that takes an item in ``items`` and returns a
        non-negative integer weight for that item.
    :raises ValueError: if any weights are negative or there are no items (or all
        weights are zero).

    An example of usage (the picks are random; these are what a ``random.seed(40)`` gives):

        >>> words = ["apple", "banana", "cantelope"]
        >>> lottery = WeightedLottery(words, weight_key=len)
        >>> lottery.pick()
        'banana'
        >>> lottery.sample(2)
        ['apple', 'cantelope']
    """

    def __init__(self, items: Iterable[T], weight_key: Callable[[T], float]) -> None:
        self.items = list(items)
        if not self.items:
            raise ValueError("items must not be empty")

        self.weights: list[float] = []
        # Running totals let pick() find the winner with a binary search.
        self._cumulative_weights: list[float] = []
        total: float = 0
        for item in self.items:
            weight = weight_key(item)
            if weight < 0:
                raise ValueError(f"weight for {item!r} must be non-negative, got {weight!r}")
            self.weights.append(weight)
            total += weight
            self._cumulative_weights.append(total)

        if total <= 0:
            raise ValueError("at least one item must have a positive weight")

    def pick(self) -> T:
        """Pick a random element from the lottery."""
        winning_ticket = random.random() * self._cumulative_weights[-1]
        index = bisect.bisect(self._cumulative_weights, winning_ticket)
        # guards against float rounding landing exactly on the total
        return self.items[min(index, len(self.items) - 1)]

    def sample(self, sample_size: int) -> list[T]:
        """Sample elements from the lottery without replacement.

        Items are chosen as by repeated :meth:`pick` with each winner removed; items of
        zero weight are only chosen once every weighted item has been.

        :param sample_size: The number of items to sample from the lottery.
        :raises ValueError: if ``sample_size`` is negative or larger than the number
            of items.
        """
        if not 0 <= sample_size <= len(self.items):
            raise ValueError(
                f"sample size must be between 0 and {len(self.items)} (the number of items), "
                f"got {sample_size}"
            )

        # Weighted sampling without replacement (Efraimidis and Spirakis): give each
        # item the key u ** (1 / weight) and keep the largest keys.
        keyed = []
        for index, weight in enumerate(self.weights):
            ticket = random.random()
            key = ticket ** (1.0 / weight) if weight > 0 else ticket - 1.0
            keyed.append((key, index))
        winners = heapq.nlargest(sample_size, keyed)
        return [self.items[index] for _, index in winners]


__all__ = ["WeightedLottery"]
