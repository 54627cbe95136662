"""How far a workload has got, read from its status and its pods (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rbg_flows.api import DEPLOYMENT, LEADERWORKERSET, STATEFULSET

JSON = dict[str, Any]


@dataclass(frozen=True)
class Readiness:
    replicas: int
    ready: int
    updated: int
    settled: bool  # the controller has observed our last change and finished rolling it out

    @property
    def done(self) -> bool:
        return self.settled and self.ready >= self.replicas and self.updated >= self.replicas


def readiness(kind: str, obj: JSON | None, want_replicas: int, min_generation: int) -> Readiness:
    """Progress of one workload towards `want_replicas` ready instances at generation >= min_generation."""
    if obj is None:
        return Readiness(want_replicas, 0, 0, False)
    status = obj.get("status") or {}
    observed = int(status.get("observedGeneration") or 0)
    generation = int(obj.get("metadata", {}).get("generation") or 0)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    settled = observed >= max(min_generation, generation)
    if kind == LEADERWORKERSET and "observedGeneration" not in status:
        # LWS v0.8 reports no observedGeneration: its counters are the only signal; the pods are checked
        # too (`runs_template`), and the object must at least be the one we applied.
        settled = bool(status) and generation >= min_generation
    if kind == STATEFULSET:
        # Pods of an old revision still count as ready until replaced: the revisions must agree.
        settled = settled and status.get("currentRevision") == status.get("updateRevision")
        settled = settled and int(status.get("replicas") or 0) == want_replicas
    elif kind == DEPLOYMENT:
        settled = settled and int(status.get("replicas") or 0) == want_replicas
    if kind in (STATEFULSET, DEPLOYMENT):
        # Available = ready for minReadySeconds, which is what the role's readiness gate means.
        ready = min(ready, int(status.get("availableReplicas") or 0))
    return Readiness(want_replicas, min(ready, want_replicas), min(updated, want_replicas), settled)


def unschedulable(role: str, pods: list[JSON]) -> str:
    """What the scheduler says of the role's live pods it cannot place ("" when it places them all):
    their count and its message, e.g. "role prefill: 3 pods unschedulable: 0/16 nodes are available:
    16 Insufficient nvidia.com/gpu." (the first pod's message; they share the template)."""
    stuck = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        for c in (pod.get("status") or {}).get("conditions") or []:
            if (
                c.get("type") == "PodScheduled"
                and c.get("status") == "False"
                and c.get("reason") == "Unschedulable"
            ):
                stuck.append(str(c.get("message") or "no node fits"))
    if not stuck:
        return ""
    pods_word = "pod" if len(stuck) == 1 else "pods"
    return f"role {role}: {len(stuck)} {pods_word} unschedulable: {stuck[0]}"


# What makes one container differ from another for a rollout; the rest (env, volume mounts, probes) is
# also changed by the workload controllers (LWS injects its own env), so it cannot be compared as is.
_CONTAINER_KEYS = ("image", "command", "args")


def runs_template(pod: JSON, template: JSON) -> bool:
    """Whether a pod was made from this pod template: every container of the template is in the pod
    with the same image, command and args (pure)."""
    have = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    for want in ((template.get("spec") or {}).get("containers")) or []:
        got = have.get(want.get("name"))
        if got is None or any(want.get(k) != got.get(k) for k in _CONTAINER_KEYS if k in want):
            return False
    return True
