"""Pod failures as the watcher sees them (pure)."""

from __future__ import annotations

from typing import Any

from rbg_flows.watcher.failures import FailureMemo


def pod(uid: str = "p1", restarts: int = 0, phase: str = "Running", deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "name": "g-decode-0"}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    return {
        "metadata": meta,
        "status": {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]},
    }


def test_the_first_sight_records_and_later_changes_are_failures() -> None:
    memo = FailureMemo()
    assert memo.failure("ADDED", pod(restarts=4)) is None  # old restarts, seen at a start
    assert memo.failure("MODIFIED", pod(restarts=4)) is None
    assert memo.failure("MODIFIED", pod(restarts=5)) == "restarted"
    assert memo.failure("MODIFIED", pod(restarts=5, phase="Failed")) == "failed"
    assert memo.failure("MODIFIED", pod(restarts=5, phase="Failed", deleting=True)) == "deleted"
    assert memo.failure("DELETED", pod(restarts=5, phase="Failed", deleting=True)) is None  # said already


def test_a_force_delete_is_a_deletion_and_pods_are_told_apart_by_uid() -> None:
    memo = FailureMemo()
    memo.failure("ADDED", pod("a"))
    memo.failure("ADDED", pod("b", restarts=2))
    assert memo.failure("MODIFIED", pod("a", restarts=1)) == "restarted"
    assert memo.failure("DELETED", pod("b", restarts=2)) == "deleted"
    assert memo.failure("DELETED", pod("c")) is None  # never seen
    assert set(memo.pods) == {"a"}
