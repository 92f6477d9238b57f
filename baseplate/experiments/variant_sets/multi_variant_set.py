"""Three or more variants laid out one after another over the buckets."""

from __future__ import annotations

from typing import Any, Optional

from baseplate.experiments.providers.base import DEFAULT_NUM_BUCKETS
from baseplate.experiments.variant_sets.base import VariantSet, validate_variant_list


class MultiVariantSet(VariantSet):
    """Variant Set designed to handle more than two total treatments.

    Variants take consecutive ranges of buckets in the order they are listed. Changing
    sizes moves users between variants (rebucketing).

    :param variants: Array of three or more dicts, each containing the keys 'name' and
        'size'. Size is the fraction of users to bucket into the variant, between 0 and 1.
    :param num_buckets: The number of potential buckets that can be passed in for a
        variant call. Defaults to 1000, which means maximum granularity of 0.1%.
    :raises ValueError: the variants are malformed or take more than all buckets.
    """

    def __init__(self, variants: Any, num_buckets: int = DEFAULT_NUM_BUCKETS) -> None:
        self.variants = validate_variant_list(variants, "multi_variant")
        self.num_buckets = num_buckets
        if len(self.variants) < 3:
            raise ValueError(
                f"multi_variant: expected three or more variants, got {len(self.variants)}"
            )
        total = sum(int(variant["size"] * num_buckets) for variant in self.variants)
        if total > num_buckets:
            raise ValueError("multi_variant: the sum of all variant sizes is greater than 100%")

    def __contains__(self, item: object) -> bool:
        return any(variant["name"] == item for variant in self.variants)

    def choose_variant(self, bucket: int) -> Optional[str]:
        """Return the variant whose range of buckets contains ``bucket``."""
        upper_bound = 0
        for variant in self.variants:
            upper_bound += int(variant["size"] * self.num_buckets)
            if bucket < upper_bound:
                return str(variant["name"])
        return None
