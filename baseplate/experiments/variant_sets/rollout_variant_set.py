"""A single variant for feature rollouts."""

from __future__ import annotations

from typing import Any, Optional

from baseplate.experiments.providers.base import DEFAULT_NUM_BUCKETS
from baseplate.experiments.variant_sets.base import VariantSet, validate_variant_list


class RolloutVariantSet(VariantSet):
    """VariantSet designed for feature rollouts. Takes a single variant.

    The variant takes buckets from the bottom of the range, so changing its size only
    moves the difference: going from 45% to 55% gives the treatment to 10% more users and
    the first 45% keep it.

    :param variants: array of one dict containing the keys 'name' and 'size' (a fraction
        between 0 and 1).
    :param num_buckets: the number of potential buckets that can be passed in for a
        variant call. Defaults to 1000, which means maximum granularity of 0.1%.
    :raises ValueError: the variants are malformed.
    """

    def __init__(self, variants: Any, num_buckets: int = DEFAULT_NUM_BUCKETS) -> None:
        checked = validate_variant_list(variants, "feature_rollout")
        if len(checked) != 1:
            raise ValueError(f"feature_rollout: expected exactly one variant, got {len(checked)}")
        self.variant = checked[0]
        self.num_buckets = num_buckets

    def __contains__(self, item: object) -> bool:
        return bool(self.variant["name"] == item)

    def choose_variant(self, bucket: int) -> Optional[str]:
        """Return the variant for the lowest ``size`` fraction of buckets."""
        if bucket < int(self.variant["size"] * self.num_buckets):
            return str(self.variant["name"])
        return None
