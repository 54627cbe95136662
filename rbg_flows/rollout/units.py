"""In which order the roles of an upgrade move (pure).

A unit is a set of roles that move together: the roles linked (transitively) by lock-step rules, or
one role on its own. Units of one stage run at the same time; stages run one after another.

Without `spec.rolloutOrder` every unit is in one stage (each role rolls at its own pace, as the
reference controller does). With it, units run one after another in that order (a unit takes the
position of its first listed role), and the units it does not mention follow, in spec order. A
rollback runs the stages in reverse.
"""

from __future__ import annotations

from collections.abc import Sequence

from rbg_flows.api.rbg import RoleBasedGroupSpec
from rbg_flows.rollout.planner import rule_from_coordination

Unit = tuple[str, ...]


def lock_step_units(spec: RoleBasedGroupSpec, roles: Sequence[str]) -> list[Unit]:
    """`roles` grouped by the lock-step rules that link them, in spec order."""
    wanted = [r.name for r in spec.roles if r.name in set(roles)]
    parent = {name: name for name in wanted}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for coordination in spec.coordination:
        rule = rule_from_coordination(coordination)
        if rule is None:
            continue
        members = [name for name in rule.roles if name in parent]
        for other in members[1:]:
            parent[find(other)] = find(members[0])
    groups: dict[str, list[str]] = {}
    for name in wanted:
        groups.setdefault(find(name), []).append(name)
    return [tuple(group) for group in groups.values()]


def rollout_stages(
    spec: RoleBasedGroupSpec, roles: Sequence[str], *, reverse: bool = False
) -> list[list[Unit]]:
    units = lock_step_units(spec, roles)
    if not units:
        return []
    if not spec.rollout_order:
        return [units]
    position = {name: i for i, name in enumerate(spec.rollout_order)}
    listed = sorted(
        (u for u in units if any(r in position for r in u)),
        key=lambda u: min(position[r] for r in u if r in position),
    )
    rest = [u for u in units if not any(r in position for r in u)]
    stages = [[u] for u in (*listed, *rest)]
    return stages[::-1] if reverse else stages
