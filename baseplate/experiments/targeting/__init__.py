"""Targeting: which requests a simple experiment applies to."""

from baseplate.experiments.targeting.base import Targeting
from baseplate.experiments.targeting.tree_targeting import (
    TargetingNodeError,
    UnknownTargetingOperatorError,
    create_targeting_tree,
)

__all__ = [
    "Targeting",
    "TargetingNodeError",
    "UnknownTargetingOperatorError",
    "create_targeting_tree",
]
