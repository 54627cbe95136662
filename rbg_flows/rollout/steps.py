"""The steps of one unit of an upgrade, as the Upgrade operation takes them and as `rbg-flows plan`
shows them beforehand (pure): one state builder and one step text for both, so the preview is the
operation's own plan.

A role that is not a StatefulSet (a Deployment, a LeaderWorkerSet) rolls natively: it cannot be held
part-way, so it counts as one unit of progress that moves in a single step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from rbg_flows.api.rbg import RoleBasedGroupSpec
from rbg_flows.rollout.planner import RoleRollout, RolloutState, Step, plan_all, resolve, state_from_spec


def unit_state(
    spec: RoleBasedGroupSpec,
    unit: Sequence[str],
    updated: Mapping[str, int],
    native_done: Mapping[str, bool],
) -> RolloutState:
    """The rollout of `unit`: StatefulSet roles at their `updated` counts, native roles (the keys of
    `native_done`) as one unit each."""
    base = state_from_spec(spec, updated, roles=unit)
    return RolloutState(
        tuple(
            RoleRollout(r.name, 1, int(native_done[r.name])) if r.name in native_done else r
            for r in base.roles
        ),
        base.rules,
    )


def step_text(step: Step) -> str:
    """`prefill 0→2, decode 0→1`: the roles a step moves (the operation's step summaries carry it)."""
    return ", ".join(f"{m.name} {m.before}→{m.after}" for m in step.moves if m.pods > 0)


@dataclass(frozen=True)
class PlannedStep:
    text: str
    pods: int
    skew: Fraction  # the largest progress gap between two roles of the unit after the step


def preview_unit(spec: RoleBasedGroupSpec, unit: Sequence[str], native: Sequence[str]) -> list[PlannedStep]:
    """Every step of `unit` from the start (no pod updated), each completing as planned."""
    state = unit_state(spec, unit, {}, {r: False for r in native})
    targets = {name: role.target for name, role in resolve(state).roles.items()}
    out = []
    for step in plan_all(state):
        progress = [Fraction(n, targets[r]) for r, n in step.after.items() if targets[r]]
        skew = max(progress) - min(progress) if progress else Fraction(0)
        out.append(PlannedStep(step_text(step), step.pods, skew))
    return out
