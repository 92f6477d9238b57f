"""Variant sets: how a simple experiment maps buckets to its variants."""

from baseplate.experiments.variant_sets.base import VariantSet
from baseplate.experiments.variant_sets.multi_variant_set import MultiVariantSet
from baseplate.experiments.variant_sets.rollout_variant_set import RolloutVariantSet
from baseplate.experiments.variant_sets.single_variant_set import SingleVariantSet

__all__ = ["MultiVariantSet", "RolloutVariantSet", "SingleVariantSet", "VariantSet"]
