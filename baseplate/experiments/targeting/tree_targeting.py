"""Targeting trees: boolean expressions over a variant call's keyword arguments.

A tree is JSON: each node is an object with a single key, the operator, whose value is
the operator's input::

    {"ALL": [
        {"ANY": [
            {"EQ": {"field": "is_mod", "value": true}},
            {"EQ": {"field": "user_id", "values": ["t2_1", "t2_2"]}}
        ]},
        {"NOT": {"EQ": {"field": "has_commented", "value": true}}}
    ]}

Operators (case insensitive): ``ALL`` and ``ANY`` take a list of nodes; ``NOT`` one
node; ``EQ`` an object with ``field`` and ``value`` (one accepted value) or ``values``
(a list); ``OVERRIDE`` ``true`` or ``false`` (matches everything or nothing). The
comparisons ``GT``, ``GE``, ``LT``, ``LE`` and ``NE`` take ``field`` and ``value`` and
are accepted for configurations written for later baseplate versions. Field names are
compared in lower case, so keyword arguments must be passed in lower case.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable
from typing import Any

from baseplate.experiments.targeting.base import Targeting

logger = logging.getLogger(__name__)


class TargetingNodeError(ValueError):
    """A node of a targeting tree is malformed; the message says which and why."""


class UnknownTargetingOperatorError(TargetingNodeError):
    """A targeting tree uses an operator that does not exist."""


def _field_name(node: dict[str, Any], operator_name: str) -> str:
    field = node.get("field")
    if not isinstance(field, str) or not field:
        raise TargetingNodeError(f"{operator_name}: 'field' must be a non-empty string")
    return field.lower()


class EqualNode(Targeting):
    """Matches when a field equals a value, or one of a list of values.

    Input: ``{"field": <name>, "value": <accepted value>}`` or
    ``{"field": <name>, "values": [<accepted values>]}``.
    """

    def __init__(self, input_node: Any) -> None:
        if not isinstance(input_node, dict) or len(input_node) != 2:
            raise TargetingNodeError("EQ expects an object with exactly two keys")
        if "value" not in input_node and "values" not in input_node:
            raise TargetingNodeError("EQ expects the key 'value' or 'values'")
        self._field = _field_name(input_node, "EQ")
        values = input_node.get("values") or [input_node.get("value")]
        if not isinstance(values, list):
            raise TargetingNodeError("EQ: 'values' must be a list")
        self._accepted_values = values

    def evaluate(self, **kwargs: Any) -> bool:
        """Return whether the field's value is one of the accepted values."""
        candidate = kwargs.get(self._field)
        try:
            return candidate in self._accepted_values
        except TypeError:
            return False


class AllNode(Targeting):
    """Matches when every child node matches. Input: a list of nodes."""

    def __init__(self, input_node: Any) -> None:
        if not isinstance(input_node, list):
            raise TargetingNodeError("ALL expects a list of nodes")
        self._children = [create_targeting_tree(node) for node in input_node]

    def evaluate(self, **kwargs: Any) -> bool:
        """Return whether all children match."""
        return all(child.evaluate(**kwargs) for child in self._children)


class AnyNode(Targeting):
    """Matches when at least one child node matches. Input: a list of nodes."""

    def __init__(self, input_node: Any) -> None:
        if not isinstance(input_node, list):
            raise TargetingNodeError("ANY expects a list of nodes")
        self._children = [create_targeting_tree(node) for node in input_node]

    def evaluate(self, **kwargs: Any) -> bool:
        """Return whether any child matches."""
        return any(child.evaluate(**kwargs) for child in self._children)


class NotNode(Targeting):
    """Matches when its child node does not. Input: one node."""

    def __init__(self, input_node: Any) -> None:
        if not isinstance(input_node, dict) or len(input_node) != 1:
            raise TargetingNodeError("NOT expects a single node")
        self._child = create_targeting_tree(input_node)

    def evaluate(self, **kwargs: Any) -> bool:
        """Return the negation of the child."""
        return not self._child.evaluate(**kwargs)


class OverrideNode(Targeting):
    """Matches everything (input ``true``) or nothing (anything else)."""

    def __init__(self, input_node: Any) -> None:
        self._return_value = input_node is True

    def evaluate(self, **kwargs: Any) -> bool:
        """Return the configured constant."""
        return self._return_value


class ComparisonNode(Targeting):
    """Matches when ``<field> <comparison> <value>`` holds (GT, GE, LT, LE, NE)."""

    def __init__(self, input_node: Any, comparator: Callable[[Any, Any], Any]) -> None:
        if not isinstance(input_node, dict) or len(input_node) != 2:
            raise TargetingNodeError("comparisons expect an object with 'field' and 'value'")
        if "value" not in input_node:
            raise TargetingNodeError("comparisons expect the key 'value'")
        self._field = _field_name(input_node, "comparison")
        self._accepted_value = input_node["value"]
        self._comparator = comparator

    def evaluate(self, **kwargs: Any) -> bool:
        """Return the comparison's result; values that cannot be compared do not match."""
        candidate = kwargs.get(self._field)
        if candidate is None and self._accepted_value is None:
            return False
        try:
            return bool(self._comparator(candidate, self._accepted_value))
        except TypeError:
            return False


_NODE_TYPES: dict[str, Callable[[Any], Targeting]] = {
    "all": AllNode,
    "any": AnyNode,
    "eq": EqualNode,
    "not": NotNode,
    "override": OverrideNode,
    "gt": lambda node: ComparisonNode(node, operator.gt),
    "ge": lambda node: ComparisonNode(node, operator.ge),
    "lt": lambda node: ComparisonNode(node, operator.lt),
    "le": lambda node: ComparisonNode(node, operator.le),
    "ne": lambda node: ComparisonNode(node, operator.ne),
}


def create_targeting_tree(input_node: Any) -> Targeting:
    """Build a targeting tree from its JSON configuration.

    :raises UnknownTargetingOperatorError: an operator is not one of those listed in
        this module's documentation.
    :raises TargetingNodeError: a node is malformed.
    """
    if not isinstance(input_node, dict) or len(input_node) != 1:
        raise TargetingNodeError(
            f"a targeting node must be an object with a single operator key, got {input_node!r}"
        )
    ((operator_name, operator_input),) = input_node.items()
    node_type = _NODE_TYPES.get(str(operator_name).lower())
    if node_type is None:
        raise UnknownTargetingOperatorError(f"unknown targeting operator {operator_name!r}")
    return node_type(operator_input)
