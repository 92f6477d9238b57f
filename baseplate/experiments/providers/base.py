"""The interface every experiment provider implements, and the shared bucketing hash."""

from __future__ import annotations

import hashlib
from typing import Any, Optional

#: How many buckets bucketing values are spread over unless an experiment says otherwise.
DEFAULT_NUM_BUCKETS = 1000


def calculate_bucket(seed: str, bucket_val: Any, num_buckets: int = DEFAULT_NUM_BUCKETS) -> int:
    """Sort a bucketing value into one of ``num_buckets`` buckets.

    The bucket is the SHA-1 of the seed followed by the value (both as text), read as a
    hexadecimal integer, modulo ``num_buckets``. Every baseplate implementation buckets
    this way, so a user lands in the same bucket in every service. Mixing the
    experiment's seed in keeps the same users from sharing a bucket in every experiment.
    """
    digest = hashlib.sha1(f"{seed!s}{bucket_val!s}".encode()).hexdigest()
    return int(digest, 16) % num_buckets


class Experiment:
    """Base interface for experiment objects.

    ``id``, ``name``, ``owner`` and ``version`` describe the experiment in bucketing and
    exposure events; they are ``None`` where a provider has no such value.
    """

    id: Optional[int] = None
    name: Optional[str] = None
    owner: Optional[str] = None
    version: Optional[str] = None

    def get_unique_id(self, **kwargs: Any) -> Optional[str]:
        """Generate a unique ID for this experiment with the given inputs.

        Used to determine if a bucketing event has already been fired for a given
        experiment and bucketing value pair. The kwargs should be the same values passed
        to :py:meth:`variant`. Experiments that log bucketing events must implement this;
        others return ``None``.
        """
        if self.should_log_bucketing():
            raise NotImplementedError
        return None

    def variant(self, **kwargs: Any) -> Optional[str]:
        """Determine which variant, if any, of this experiment is active.

        All arguments needed for bucketing, targeting, and variant overrides are passed
        as keyword arguments; their names depend on the experiment's configuration.

        :return: The name of the enabled variant, or ``None`` if no variant is enabled.
        """
        raise NotImplementedError

    def should_log_bucketing(self) -> bool:
        """Whether this experiment logs bucketing events to the event pipeline."""
        raise NotImplementedError
