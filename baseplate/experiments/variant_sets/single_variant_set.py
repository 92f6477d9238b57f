"""A variant and a control, taken from opposite ends of the bucket range."""

from __future__ import annotations

from typing import Any, Optional

from baseplate.experiments.providers.base import DEFAULT_NUM_BUCKETS
from baseplate.experiments.variant_sets.base import VariantSet, validate_variant_list


class SingleVariantSet(VariantSet):
    """Variant Set designed to handle two total treatments.

    The first variant takes buckets from the bottom of the range and the second from the
    top, so sizes can change without moving users between treatments where possible;
    when not possible (e.g. 60/40 to 40/60) only the buckets in between change.

    :param variants: array of two dicts, each containing the keys 'name' and 'size'.
        Size is the fraction of users to bucket into the variant, between 0 and 1; the
        two sizes add up to at most 1.
    :param num_buckets: the number of potential buckets that can be passed in for a
        variant call. Defaults to 1000, which means maximum granularity of 0.1% for
        bucketing.
    :raises ValueError: the variants are malformed.
    """

    def __init__(self, variants: Any, num_buckets: int = DEFAULT_NUM_BUCKETS) -> None:
        self.variants = validate_variant_list(variants, "single_variant")
        if len(self.variants) != 2:
            raise ValueError(
                "single_variant: expected exactly two variants (one variant and one "
                f"control), got {len(self.variants)}"
            )
        total = self.variants[0]["size"] + self.variants[1]["size"]
        if total > 1:
            raise ValueError(f"single_variant: variant sizes add up to {total}, more than 1")
        self.num_buckets = num_buckets

    def __contains__(self, item: object) -> bool:
        return any(variant["name"] == item for variant in self.variants)

    def choose_variant(self, bucket: int) -> Optional[str]:
        """Return the first variant for low buckets, the second for high ones."""
        first, second = self.variants
        if bucket < int(first["size"] * self.num_buckets):
            return str(first["name"])
        if bucket >= self.num_buckets - int(second["size"] * self.num_buckets):
            return str(second["name"])
        return None
