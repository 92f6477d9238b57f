"""Targeting trees: ALL, ANY, EQ, NOT, OVERRIDE (and comparisons) over variant inputs."""

from __future__ import annotations

from typing import Any

import pytest

from baseplate.experiments.targeting import (
    TargetingNodeError,
    UnknownTargetingOperatorError,
    create_targeting_tree,
)

TREE = {
    "ALL": [
        {
            "ANY": [
                {"EQ": {"field": "is_mod", "value": True}},
                {"EQ": {"field": "user_id", "values": ["t2_1", "t2_2", "t2_3", "t2_4"]}},
            ]
        },
        {"NOT": {"EQ": {"field": "has_commented", "value": True}}},
        {"EQ": {"field": "is_logged_in", "values": [True, False]}},
        {"NOT": {"EQ": {"field": "subreddit_id", "values": ["t5_1", "t5_2"]}}},
        {
            "ALL": [
                {"EQ": {"field": "votes_cast", "values": [1, 2, 3, 4, 5]}},
                {"EQ": {"field": "votes_cast", "value": 5}},
            ]
        },
    ]
}

MATCHING = {
    "is_mod": False,
    "user_id": "t2_3",
    "has_commented": False,
    "is_logged_in": True,
    "subreddit_id": "t5_9",
    "votes_cast": 5,
}


def test_full_tree_matches() -> None:
    assert create_targeting_tree(TREE).evaluate(**MATCHING)


@pytest.mark.parametrize(
    "change",
    [
        {"user_id": "t2_9"},
        {"has_commented": True},
        {"is_logged_in": None},
        {"subreddit_id": "t5_2"},
        {"votes_cast": 4},
    ],
)
def test_each_condition_can_exclude(change: dict[str, Any]) -> None:
    assert not create_targeting_tree(TREE).evaluate(**{**MATCHING, **change})


def test_any_matches_on_either_branch() -> None:
    tree = create_targeting_tree(TREE)
    assert tree.evaluate(**{**MATCHING, "user_id": "t2_9", "is_mod": True})


def test_operators_are_case_insensitive_and_fields_lower_cased() -> None:
    tree = create_targeting_tree({"eq": {"field": "User_Id", "value": "t2_1"}})
    assert tree.evaluate(user_id="t2_1")
    assert not tree.evaluate(User_Id="t2_1")


def test_override_constants() -> None:
    assert create_targeting_tree({"OVERRIDE": True}).evaluate()
    assert not create_targeting_tree({"OVERRIDE": False}).evaluate(anything=1)
    assert not create_targeting_tree({"OVERRIDE": "true"}).evaluate()


def test_comparisons() -> None:
    newer = create_targeting_tree({"GT": {"field": "age", "value": 30}})
    assert newer.evaluate(age=31)
    assert not newer.evaluate(age=30)
    assert not newer.evaluate(age=None)
    assert not newer.evaluate(age="thirty")
    assert create_targeting_tree({"NE": {"field": "x", "value": 1}}).evaluate(x=2)
    assert create_targeting_tree({"LE": {"field": "x", "value": 1}}).evaluate(x=1)


def test_unhashable_inputs_do_not_raise() -> None:
    tree = create_targeting_tree({"EQ": {"field": "roles", "values": [["admin"]]}})
    assert tree.evaluate(roles=["admin"])
    assert not tree.evaluate(roles={"admin": True})


@pytest.mark.parametrize(
    ("node", "error", "message"),
    [
        ({"FOO": []}, UnknownTargetingOperatorError, "unknown targeting operator 'FOO'"),
        ({"ALL": [], "ANY": []}, TargetingNodeError, "single operator key"),
        ([{"ALL": []}], TargetingNodeError, "single operator key"),
        ({"ALL": {"EQ": {}}}, TargetingNodeError, "ALL expects a list"),
        ({"ANY": "x"}, TargetingNodeError, "ANY expects a list"),
        ({"NOT": [{"OVERRIDE": True}]}, TargetingNodeError, "NOT expects a single node"),
        ({"EQ": {"field": "x"}}, TargetingNodeError, "exactly two keys"),
        ({"EQ": {"field": "x", "other": 1}}, TargetingNodeError, "'value' or 'values'"),
        ({"EQ": {"field": 3, "value": 1}}, TargetingNodeError, "'field'"),
        ({"EQ": {"field": "x", "values": "abc"}}, TargetingNodeError, "must be a list"),
        ({"GT": {"field": "x"}}, TargetingNodeError, "'field' and 'value'"),
        ({"ALL": [{"EQ": {"field": "x"}}]}, TargetingNodeError, "EQ"),
    ],
)
def test_malformed_nodes(node: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        create_targeting_tree(node)
