"""What `rbg-flows history` and `diff` show of a group's ControllerRevisions (pure).

A revision stores the group spec without replicas; its change summary names the roles whose own
revision hash differs from the revision before it (and the roles added or removed), which is exactly
what an upgrade to it rolls.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from rbg_flows.api import RoleBasedGroupSpec
from rbg_flows.manifests.hashing import role_revision_hashes

JSON = dict[str, Any]


@dataclass(frozen=True)
class HistoryRow:
    revision: int
    name: str
    created: str
    change: str
    current: bool


def _spec(revision: JSON) -> JSON:
    return dict((revision.get("data") or {}).get("spec") or {})


def _role_hashes(revision: JSON) -> dict[str, str]:
    profiles = (revision.get("data") or {}).get("engineRuntimeProfiles") or {}
    return role_revision_hashes(RoleBasedGroupSpec.model_validate(_spec(revision)), profiles)


def change_summary(before: JSON | None, after: JSON) -> str:
    if before is None:
        return "initial" if int(after.get("revision", 0)) == 1 else "oldest kept"
    old, new = _role_hashes(before), _role_hashes(after)
    parts = []
    changed = [r for r in new if r in old and old[r] != new[r]]
    if changed:
        parts.append("changed: " + ", ".join(changed))
    added = [r for r in new if r not in old]
    if added:
        parts.append("added: " + ", ".join(added))
    removed = [r for r in old if r not in new]
    if removed:
        parts.append("removed: " + ", ".join(removed))
    return "; ".join(parts) or "group settings only (no role changed)"


def ordered(revisions: Sequence[JSON]) -> list[JSON]:
    return sorted(revisions, key=lambda r: int(r.get("revision", 0)))


def history_rows(revisions: Sequence[JSON], current: str | None) -> list[HistoryRow]:
    rows = []
    previous: JSON | None = None
    for r in ordered(revisions):
        rows.append(
            HistoryRow(
                revision=int(r.get("revision", 0)),
                name=r["metadata"]["name"],
                created=r["metadata"].get("creationTimestamp", ""),
                change=change_summary(previous, r),
                current=r["metadata"]["name"] == current,
            )
        )
        previous = r
    return rows


def format_history(rows: Sequence[HistoryRow]) -> str:
    lines = [f"{'REVISION':<9} {'NAME':<28} {'CREATED':<21} CHANGE"]
    for row in rows:
        mark = "*" if row.current else " "
        lines.append(f"{str(row.revision) + mark:<9} {row.name:<28} {row.created:<21} {row.change}")
    return "\n".join(lines)


def find_revision(revisions: Sequence[JSON], number: int) -> JSON | None:
    return next((r for r in revisions if int(r.get("revision", 0)) == number), None)


def role_specs_yaml(revision: JSON) -> str:
    """The revision's role specs (and group-level fields) as YAML, roles by name, for a stable diff."""
    spec = _spec(revision)
    roles = {r.get("name", "?"): {k: v for k, v in r.items() if k != "name"} for r in spec.pop("roles", [])}
    return yaml.safe_dump({"roles": roles, **spec}, sort_keys=True, default_flow_style=False)


def revision_diff(old: JSON, new: JSON) -> str:
    """A unified diff of two revisions' specs (empty when equal)."""
    a, b = role_specs_yaml(old), role_specs_yaml(new)
    return "".join(
        difflib.unified_diff(
            a.splitlines(keepends=True),
            b.splitlines(keepends=True),
            fromfile=f"revision {old.get('revision')} ({old['metadata']['name']})",
            tofile=f"revision {new.get('revision')} ({new['metadata']['name']})",
        )
    )
