"""Coordinated scaling: the roles of a `spec.coordination[].strategy.scaling` rule grow or shrink in
steps that keep their progress toward the target within maxSkew (pure).

A scale is the lock-step rollout of `rollout.planner` in other units, so it inherits its proofs
(decisions 6 and 7: the skew bound holds at every corner of a step, whatever order pods finish in, and
the greedy step is the fewest steps). A role going from `start` to `target` replicas has distance
d = |target - start|; with `current` replicas its progress is |current - start| / d, in [0, 1], the
same in both directions. Mapped onto the planner: replicas d, updated |current - start| (clamped), no
partition and no batch limit other than the skew (a scale adds pods; nothing becomes unavailable). A
role whose replicas do not change has d = 0 and is done, as a role with nothing to update is. The
single-pod exemption applies: a role may lead by one of its own pods (1/d) when that is more than
maxSkew, or a 1 -> 2 role could never move under a small maxSkew.

Scale-in removes the highest ordinals (the workload controllers do so when their replicas drop) and
keeps the same bound, progress counting the pods already gone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from rbg_flows.messages import ScalingRule
from rbg_flows.rollout.planner import (
    LockStepRule,
    RoleRollout,
    RolloutState,
    is_done,
    plan_step,
)

Progression = Literal["OrderScheduled", "OrderReady"]


def coordinated_roles(rules: Sequence[ScalingRule]) -> list[str]:
    """Every role some scaling rule names, in first-mention order."""
    return list(dict.fromkeys(role for rule in rules for role in rule.roles))


def progression_of(role: str, rules: Sequence[ScalingRule]) -> Progression:
    """OrderReady if any rule of the role asks for it (the stricter gate wins), else OrderScheduled."""
    asked = {rule.progression for rule in rules if role in rule.roles}
    return "OrderReady" if "OrderReady" in asked else "OrderScheduled"


def _moved(start: int, target: int, current: int) -> int:
    distance = abs(target - start)
    moved = current - start if target >= start else start - current
    return max(0, min(moved, distance))


def scaling_state(
    start: Mapping[str, int],
    target: Mapping[str, int],
    current: Mapping[str, int],
    rules: Sequence[ScalingRule],
) -> RolloutState:
    """The scale of the roles of `target` as a lock-step rollout (module docstring)."""
    roles = tuple(
        RoleRollout(
            name,
            replicas=abs(t - start[name]),
            updated=_moved(start[name], t, current[name]),
            max_unavailable=max(1, abs(t - start[name])),
        )
        for name, t in target.items()
    )
    kept = [
        LockStepRule(rule.name, tuple(r for r in rule.roles if r in target), rule.max_skew)
        for rule in rules
        if any(r in target for r in rule.roles)
    ]
    return RolloutState(roles, tuple(kept))


def next_counts(
    start: Mapping[str, int],
    target: Mapping[str, int],
    current: Mapping[str, int],
    rules: Sequence[ScalingRule],
) -> dict[str, int] | None:
    """Every role's replicas after the next step from `current`, or None once every role is at its
    target."""
    state = scaling_state(start, target, current, rules)
    if is_done(state):
        return None
    step = plan_step(state)
    return {
        name: start[name] + (moved if target[name] >= start[name] else -moved)
        for name, moved in step.after.items()
    }


def plan_counts(
    start: Mapping[str, int], target: Mapping[str, int], rules: Sequence[ScalingRule]
) -> list[dict[str, int]]:
    """Every step's replicas from `start` to `target`, each step completing as planned (previews,
    tests, the benchmark). Each step moves at least one pod (the planner's liveness)."""
    steps: list[dict[str, int]] = []
    current = dict(start)
    while (counts := next_counts(start, target, current, rules)) is not None:
        steps.append(counts)
        current = counts
    return steps


def moves_text(before: Mapping[str, int], after: Mapping[str, int]) -> str:
    """A step as its summaries say it: "prefill 1→2, decode 1→2" (roles that move, in order)."""
    return ", ".join(f"{r} {before[r]}→{n}" for r, n in after.items() if n != before[r])
