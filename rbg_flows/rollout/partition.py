"""StatefulSet partitions for a rollout step (pure).

A StatefulSet keeps ordinals below its partition on their revision and moves every ordinal at or
above it to its update revision. A step asks for `want` pods of the role on the target revision; the
partition that gives exactly that, moving no pod that is already there, is the smallest one whose
"pods on target" count does not exceed `want` (pods below it that already run the target, e.g. after
an abort, count without moving).
"""

from __future__ import annotations

from collections.abc import Sequence


def updated_at(on_target: Sequence[bool], partition: int) -> int:
    """Pods on the target revision once every ordinal >= partition has moved."""
    n = len(on_target)
    partition = max(0, min(partition, n))
    return sum(on_target[:partition]) + (n - partition)


def partition_for(on_target: Sequence[bool], want: int, floor: int = 0) -> int:
    """The smallest partition >= floor whose updated count is at most `want` (`len(on_target)` holds
    every pod where it is)."""
    n = len(on_target)
    p = max(0, min(floor, n))
    # One pass with a running count: recounting for every candidate would be quadratic in the replicas.
    updated = sum(on_target[:p]) + (n - p)
    while p < n and updated > want:
        updated += int(on_target[p]) - 1  # ordinal p stays where it is instead of moving
        p += 1
    return p


def step_target(on_target: Sequence[bool], floor: int, after: int) -> tuple[int, int]:
    """(partition, pods on target when the step is done) for a step that leaves `after` pods on the
    target revision at or above the floor (the planner counts only those: below the floor nothing moves).
    Pods below the floor that already run the target count in the total without moving."""
    floor = max(0, min(floor, len(on_target)))
    partition = floor + partition_for(on_target[floor:], after)
    return partition, after + sum(on_target[:floor])
