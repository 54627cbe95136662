"""What applying a manifest would do to a group, on paper (pure): the operation the entity would start
(deploy, upgrade, scale), and for an upgrade or a coordinated scale the steps the operation takes,
planned by the same functions it uses (`rollout.steps`, `rollout.scaling`). `rbg-flows plan` prints it
next to the placement preview.

The comparison is with the group's current spec in the cluster. The entity compares with the spec it
last rolled out, which is the same unless an operation is in flight; engine runtime profiles are left
out of both sides (a profile change alone shows as nothing to roll).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rbg_flows.api import STATEFULSET, RoleBasedGroup
from rbg_flows.messages import Fingerprint, ValidationReport
from rbg_flows.rollout.classify import changed_roles, classify, fingerprint, upgrade_replicas
from rbg_flows.rollout.scaling import coordinated_roles, moves_text, plan_counts
from rbg_flows.rollout.steps import PlannedStep, preview_unit
from rbg_flows.rollout.units import rollout_stages

JSON = dict[str, Any]


@dataclass(frozen=True)
class UnitPreview:
    roles: tuple[str, ...]
    steps: list[PlannedStep]


@dataclass
class Preview:
    operation: str  # deploy | upgrade | scale | create
    lines: list[str] = field(default_factory=list)
    units: list[list[UnitPreview]] = field(default_factory=list)  # stages of units (an upgrade)

    def text(self) -> str:
        return "\n".join(self.lines)


def preview(rbg: RoleBasedGroup, new_obj: JSON, live_obj: JSON | None) -> Preview:
    """`rbg` is `new_obj` parsed (valid); `live_obj` the group as the cluster has it, None if absent."""
    applied = fingerprint(live_obj) if live_obj is not None else None
    new = fingerprint(new_obj)
    assert new is not None  # the caller parsed it
    if live_obj is None or applied is None:
        return _deploy(rbg, "create" if live_obj is None else "deploy")
    kind = classify(applied, new)
    if kind == "scale":
        return _scale(rbg, applied, new)
    if kind == "deploy":
        return Preview("deploy", ["nothing the workloads are built from changed: a re-apply (repairs drift)"])
    return _upgrade(rbg, applied, new)


def _scale(rbg: RoleBasedGroup, applied: Fingerprint, new: Fingerprint) -> Preview:
    start = {r: applied.replicas.get(r, 0) for r in new.replicas}
    out = Preview("scale", [f"scale: {moves_text(start, new.replicas)}"])
    rules = ValidationReport.plan(rbg).scaling  # what Scale steps by (none for a gang-scheduled group)
    coordinated = coordinated_roles(rules)
    if coordinated:
        target = {r: new.replicas[r] for r in coordinated}
        before = {r: start[r] for r in coordinated}
        steps = plan_counts(before, target, rules)
        out.lines.append(f"  {'+'.join(coordinated)} in steps ({', '.join(r.name for r in rules)}):")
        for n, counts in enumerate(steps, 1):
            out.lines.append(f"    scale step {n}: {moves_text(before, counts)}")
            before = counts
        out.lines.append(f"  {len(steps)} steps")
    return out


def _deploy(rbg: RoleBasedGroup, operation: str) -> Preview:
    levels = ValidationReport.plan(rbg).levels  # what Deploy runs (a gang-scheduled group: one level)
    out = Preview(operation, [f"{operation}: roles by dependency level {levels}"])
    for role in rbg.spec.roles:
        pods = role.replicas * role.pods_per_instance
        out.lines.append(
            f"  {role.name}: {role.workload.key.split('/')[-1]}, {role.replicas} replicas, {pods} pods"
        )
    return out


def _upgrade(rbg: RoleBasedGroup, applied: Fingerprint, new: Fingerprint) -> Preview:
    roles = changed_roles(applied, new)
    replicas = upgrade_replicas(applied, new)
    added = [r for r in new.role_hashes if r not in applied.role_hashes]
    removed = [r for r in applied.role_hashes if r not in new.role_hashes]
    spec = rbg.spec.model_copy(
        update={"roles": [r.model_copy(update={"replicas": replicas[r.name]}) for r in rbg.spec.roles]}
    )
    native = {r.name for r in spec.roles if r.workload.key != STATEFULSET}
    out = Preview("upgrade", [f"upgrade: roll {', '.join(roles) or 'no role'}"])
    if added:
        out.lines.append(f"  first create {', '.join(added)}")
    total = 0
    for i, stage in enumerate(rollout_stages(spec, roles)):
        units = [
            UnitPreview(unit, preview_unit(spec, unit, [r for r in unit if r in native])) for unit in stage
        ]
        out.units.append(units)
        for unit in units:
            rules = [c.name for c in spec.coordination if set(c.roles) & set(unit.roles)]
            how = f" (lock-step: {', '.join(rules)})" if rules else ""
            out.lines.append(f"  stage {i + 1}, {'+'.join(unit.roles)}{how}:")
            for n, step in enumerate(unit.steps, 1):
                out.lines.append(
                    f"    step {n}: {step.text}  ({step.pods} pods, skew {float(step.skew):.0%})"
                )
            total += len(unit.steps)
    if removed:
        out.lines.append(f"  then delete {', '.join(removed)}")
    resized = {r: n for r, n in new.replicas.items() if r in applied.replicas and applied.replicas[r] != n}
    if resized:
        out.lines.append(
            "  then scale " + ", ".join(f"{r} {applied.replicas[r]}→{n}" for r, n in resized.items())
        )
    out.lines.append(f"  {total} steps")
    return out
