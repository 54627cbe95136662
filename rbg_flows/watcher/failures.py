"""Which pod events of a group are failures the group's restart policy answers (pure).

A container's restart count going up, the pod turning Failed, or the pod starting to be deleted (by a
person, an eviction, the node lifecycle controller) is a failure. The first sight of a pod only records
its counts: a watcher that restarts must not take restarts of long ago for new ones. Which of these the
group acts on (our own deletions, those of a running operation, a role whose policy is None) is the
entity workflow's call, not the watcher's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Failure = Literal["restarted", "failed", "deleted"]


def _restarts(pod: Mapping[str, Any]) -> int:
    status = pod.get("status") or {}
    containers = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
    return sum(int(c.get("restartCount") or 0) for c in containers)


@dataclass
class PodSeen:
    restarts: int
    failed: bool
    deleting: bool


@dataclass
class FailureMemo:
    """What each pod (by uid) looked like at its last event."""

    pods: dict[str, PodSeen] = field(default_factory=dict)

    def failure(self, event_type: str | None, pod: Mapping[str, Any]) -> Failure | None:
        """The failure this event shows ("restarted", "failed", "deleted"), or None."""
        meta = pod["metadata"]
        uid = meta["uid"]
        if event_type == "DELETED":
            before = self.pods.pop(uid, None)
            # Deleted without ever showing a deletionTimestamp to us (a force delete): still a deletion.
            return "deleted" if before is not None and not before.deleting else None
        now = PodSeen(
            restarts=_restarts(pod),
            failed=(pod.get("status") or {}).get("phase") == "Failed",
            deleting=bool(meta.get("deletionTimestamp")),
        )
        before = self.pods.get(uid)
        self.pods[uid] = now
        if before is None:
            return None
        if now.deleting and not before.deleting:
            return "deleted"
        if now.failed and not before.failed:
            return "failed"
        if now.restarts > before.restarts:
            return "restarted"
        return None
