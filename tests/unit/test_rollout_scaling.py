"""Coordinated scaling steps: worked examples and hypothesis properties.

The skew check is written here from the contract (progress = pods moved / distance; a role may lead
another by at most max(maxSkew, one of its own pods)), and checked at every corner of every step, since
pods of a step become ready in any order.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbg_flows.api import RoleBasedGroup
from rbg_flows.messages import ScalingRule
from rbg_flows.rollout.scaling import (
    Progression,
    coordinated_roles,
    next_counts,
    plan_counts,
    progression_of,
)


def _rule(
    name: str,
    roles: tuple[str, ...],
    max_skew: int | str | None = None,
    progression: Progression = "OrderScheduled",
) -> ScalingRule:
    return ScalingRule(name=name, roles=roles, max_skew=max_skew, progression=progression)


PD = [_rule("pd", ("prefill", "decode"), "34%", "OrderReady")]


def _progress(start: int, target: int, n: int) -> Fraction:
    d = abs(target - start)
    if d == 0:
        return Fraction(1)
    return Fraction(abs(n - start), d)


def _within_bound(
    start: dict[str, int], target: dict[str, int], counts: dict[str, int], skew: Fraction
) -> bool:
    moving = [r for r in target if target[r] != start[r]]
    for a, b in itertools.permutations(moving, 2):
        limit = max(skew, Fraction(1, abs(target[a] - start[a])))
        lead = _progress(start[a], target[a], counts[a]) - _progress(start[b], target[b], counts[b])
        if lead > limit:
            return False
    return True


def test_prefill_and_decode_grow_in_steps_that_keep_their_ratio() -> None:
    steps = plan_counts({"prefill": 1, "decode": 1}, {"prefill": 6, "decode": 3}, PD)
    assert steps == [
        {"prefill": 2, "decode": 2},
        {"prefill": 5, "decode": 2},
        {"prefill": 5, "decode": 3},
        {"prefill": 6, "decode": 3},
    ]


def test_scale_in_mirrors_scale_out_and_ends_at_the_target() -> None:
    steps = plan_counts({"prefill": 6, "decode": 3}, {"prefill": 1, "decode": 1}, PD)
    assert steps[-1] == {"prefill": 1, "decode": 1}
    assert all(s["prefill"] <= 6 and s["decode"] <= 3 for s in steps)
    # Counts only ever shrink on the way down.
    for before, after in itertools.pairwise([{"prefill": 6, "decode": 3}, *steps]):
        assert all(after[r] <= before[r] for r in after)


def test_from_zero_the_ratio_holds_at_every_step() -> None:
    rules = [_rule("pd", ("prefill", "decode"), "10%")]
    steps = plan_counts({"prefill": 0, "decode": 0}, {"prefill": 30, "decode": 10}, rules)
    assert len(steps) == 10
    assert all(s["prefill"] == 3 * s["decode"] for s in steps)


def test_no_max_skew_means_one_step() -> None:
    rules = [_rule("pd", ("prefill", "decode"))]
    assert plan_counts({"prefill": 1, "decode": 1}, {"prefill": 6, "decode": 3}, rules) == [
        {"prefill": 6, "decode": 3}
    ]


def test_an_integer_max_skew_means_that_percentage() -> None:
    as_int = plan_counts({"a": 0, "b": 0}, {"a": 10, "b": 10}, [_rule("r", ("a", "b"), 20)])
    as_str = plan_counts({"a": 0, "b": 0}, {"a": 10, "b": 10}, [_rule("r", ("a", "b"), "20%")])
    assert as_int == as_str


def test_a_role_that_does_not_move_takes_no_part_in_the_skew() -> None:
    steps = plan_counts({"a": 2, "b": 4}, {"a": 2, "b": 8}, [_rule("r", ("a", "b"), "10%")])
    assert steps == [{"a": 2, "b": 8}]


def test_done_when_every_role_is_at_its_target() -> None:
    assert next_counts({"a": 1}, {"a": 3}, {"a": 3}, PD[:0]) is None
    assert next_counts({"a": 4}, {"a": 4}, {"a": 4}, PD[:0]) is None  # nothing to move
    assert next_counts({"a": 6}, {"a": 1}, {"a": 4}, PD[:0]) == {"a": 1}  # unbounded: straight there


def test_rules_come_from_the_spec_and_the_stricter_gate_wins() -> None:
    rbg = RoleBasedGroup.model_validate(
        {
            "metadata": {"name": "g"},
            "spec": {
                "roles": [
                    {
                        "name": n,
                        "replicas": 1,
                        "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
                    }
                    for n in ("router", "prefill", "decode")
                ],
                "coordination": [
                    {
                        "name": "up",
                        "roles": ["prefill", "decode"],
                        "strategy": {"rollingUpdate": {"maxSkew": "5%"}},
                    },
                    {"name": "pd", "roles": ["prefill", "decode"], "strategy": {"scaling": {"maxSkew": 34}}},
                    {
                        "name": "ready",
                        "roles": ["decode"],
                        "strategy": {"scaling": {"maxSkew": "50%", "progression": "OrderReady"}},
                    },
                ],
            },
        }
    )
    rules = ScalingRule.of(rbg)
    assert [r.name for r in rules] == ["pd", "ready"]
    assert rules[0].max_skew == 34 and rules[0].progression == "OrderScheduled"
    assert coordinated_roles(rules) == ["prefill", "decode"]
    assert progression_of("prefill", rules) == "OrderScheduled"
    assert progression_of("decode", rules) == "OrderReady"


counts = st.integers(min_value=0, max_value=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    starts=st.lists(counts, min_size=2, max_size=4),
    targets=st.lists(counts, min_size=4, max_size=4),
    skew=st.integers(min_value=1, max_value=100),
)
def test_every_corner_of_every_step_keeps_the_bound_and_the_plan_reaches_the_target(
    starts: list[int], targets: list[int], skew: int
) -> None:
    names = [f"r{i}" for i in range(len(starts))]
    start = dict(zip(names, starts, strict=True))
    target = dict(zip(names, targets[: len(names)], strict=True))
    rules = [_rule("rule", tuple(names), f"{skew}%")]
    bound = Fraction(skew, 100)
    steps = plan_counts(start, target, rules)
    assert (steps[-1] if steps else start) == target
    assert len(steps) <= sum(abs(target[r] - start[r]) for r in names)
    before = start
    for after in steps:
        for r in names:
            # Each role moves monotonically toward its target, never past it.
            lo, hi = sorted((start[r], target[r]))
            assert lo <= after[r] <= hi
            assert abs(after[r] - target[r]) <= abs(before[r] - target[r])
        # Pods of a step finish in any order: every mix of old and new counts keeps the bound.
        for corner in itertools.product(*[(before[r], after[r]) for r in names]):
            assert _within_bound(start, target, dict(zip(names, corner, strict=True)), bound)
        before = after


@pytest.mark.parametrize("skew", ["1%", "34%", "100%"])
def test_a_one_pod_role_still_moves_under_a_small_skew(skew: str) -> None:
    steps = plan_counts({"a": 1, "b": 10}, {"a": 2, "b": 40}, [_rule("r", ("a", "b"), skew)])
    assert steps[-1] == {"a": 2, "b": 40}
