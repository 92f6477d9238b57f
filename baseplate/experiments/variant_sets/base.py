"""The variant set interface and the validation shared by every variant set."""

from __future__ import annotations

from typing import Any, Optional


class VariantSet:
    """A set of variants and the rule that picks one of them for a bucket.

    Variants are configured as a list of ``{"name": ..., "size": ...}`` objects, sizes
    being fractions of the buckets (0.1 is 10%).
    """

    num_buckets: int

    def __contains__(self, item: object) -> bool:
        raise NotImplementedError

    def choose_variant(self, bucket: int) -> Optional[str]:
        """Deterministically choose a variant for ``bucket`` (``None`` for no variant)."""
        raise NotImplementedError


def validate_variant_list(variants: Any, kind: str) -> list[dict[str, Any]]:
    """Check that ``variants`` is a list of ``{"name": str, "size": 0..1}`` objects.

    :raises ValueError: naming the variant and the problem.
    """
    if not isinstance(variants, list):
        raise ValueError(f"{kind}: variants must be a list of {{name, size}} objects")
    for index, variant in enumerate(variants):
        if not isinstance(variant, dict):
            raise ValueError(f"{kind}: variants[{index}] must be an object with name and size")
        name = variant.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{kind}: variants[{index}].name must be a non-empty string")
        size = variant.get("size")
        if size is None:
            raise ValueError(f"{kind}: variant {name!r} has no size")
        if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 <= size <= 1:
            raise ValueError(
                f"{kind}: variant {name!r} size must be a fraction between 0 and 1, got {size!r}"
            )
    return variants
