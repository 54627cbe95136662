"""What a kubelet would report for a pod: pure functions from a pod and the simulator's view to a status
patch (strategic merge, so conditions written by others, such as readiness gates, are kept)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from rbg_flows.sim import annotations as ann

JSON = dict[str, Any]
CRASH_MARK = "sim crash "


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return (
            datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC).timestamp()
        )
    except ValueError:
        return None


def condition(pod: JSON, ctype: str) -> str | None:
    for c in pod.get("status", {}).get("conditions") or []:
        if c.get("type") == ctype:
            return str(c.get("status"))
    return None


def gates_open(pod: JSON) -> bool:
    gates = [g["conditionType"] for g in pod.get("spec", {}).get("readinessGates") or []]
    return all(condition(pod, g) == "True" for g in gates)


def restart_count(pod: JSON) -> int:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return max((int(s.get("restartCount", 0)) for s in statuses), default=0)


def handled_crash(pod: JSON) -> str | None:
    """The last crash token the simulator acted on, kept in the pod's own status so a restarted
    simulator does not crash a pod twice for one request."""
    for s in pod.get("status", {}).get("containerStatuses") or []:
        msg = s.get("lastState", {}).get("terminated", {}).get("message", "")
        if msg.startswith(CRASH_MARK):
            return str(msg[len(CRASH_MARK) :])
    return None


def started_at(pod: JSON) -> float | None:
    for s in pod.get("status", {}).get("containerStatuses") or []:
        t = parse_time(s.get("state", {}).get("running", {}).get("startedAt"))
        if t is not None:
            return t
    return None


@dataclass(frozen=True)
class Decision:
    """What to do now: a status patch, a deletion, or nothing; and when to look again."""

    patch: JSON | None = None
    finalize: bool = False
    recheck_at: float | None = None
    ready_at: float | None = None


def _cond(ctype: str, status: bool, ts: str, reason: str | None = None) -> JSON:
    c: JSON = {
        "type": ctype,
        "status": "True" if status else "False",
        "lastTransitionTime": ts,
        "lastProbeTime": None,
    }
    if reason and not status:
        c["reason"] = reason
    return c


def _container_statuses(
    pod: JSON, ready: bool, restarts: int, ts: str, started_ts: str, last_state: JSON | None
) -> list[JSON]:
    out = []
    for c in pod["spec"].get("containers", []):
        s: JSON = {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": f"sim://{c.get('image', '')}",
            "containerID": f"sim://{pod['metadata']['uid']}/{c['name']}/{restarts}",
            "ready": ready,
            "started": True,
            "restartCount": restarts,
            "state": {"running": {"startedAt": started_ts}},
            "lastState": last_state or {},
        }
        out.append(s)
    return out


def _init_statuses(pod: JSON, ts: str) -> list[JSON]:
    out = []
    for c in pod["spec"].get("initContainers") or []:
        sidecar = c.get("restartPolicy") == "Always"
        state: JSON = (
            {"running": {"startedAt": ts}}
            if sidecar
            else {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": ts, "finishedAt": ts}}
        )
        out.append(
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": f"sim://{c.get('image', '')}",
                "containerID": f"sim://{pod['metadata']['uid']}/{c['name']}/0",
                "ready": sidecar,
                "started": sidecar,
                "restartCount": 0,
                "state": state,
            }
        )
    return out


def decide(
    pod: JSON,
    *,
    now: float,
    ready_at: float | None,
    ready_delay: float,
    pod_ip: str,
    host_ip: str,
    seen_at: float | None = None,
) -> Decision:
    """The kubelet's next step for one pod bound to a live simulated node.

    `seen_at` is when the simulator first saw the pod bound: a simulator running behind (a burst of
    thousands of pods) reports start and readiness in one patch once the delay has already passed,
    halving its writes exactly when the API server is busiest.
    """
    meta, status = pod["metadata"], pod.get("status", {})
    annotations = meta.get("annotations") or {}
    phase = status.get("phase", "Pending")
    ts = now_iso()
    if meta.get("deletionTimestamp"):
        return Decision(finalize=True)
    if phase in ("Succeeded", "Failed"):
        return Decision()
    if annotations.get(ann.FAIL) == "true":
        terminated = {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": ts, "finishedAt": ts}}
        statuses = [
            {**s, "ready": False, "started": False, "state": terminated}
            for s in _container_statuses(pod, False, restart_count(pod), ts, ts, None)
        ]
        return Decision(
            patch={
                "status": {
                    "phase": "Failed",
                    "reason": "Error",
                    "message": "simulated pod failure",
                    "conditions": [
                        _cond("Ready", False, ts, "PodFailed"),
                        _cond("ContainersReady", False, ts, "PodFailed"),
                    ],
                    "containerStatuses": statuses,
                }
            }
        )

    started = phase == "Running" and status.get("containerStatuses")
    crash = annotations.get(ann.CRASH)
    if not started:
        ready_at = max(now, (seen_at if seen_at is not None else now) + ready_delay)
        ready = ready_at <= now and annotations.get(ann.HOLD) != "true"
        return Decision(
            patch={
                "status": {
                    "phase": "Running",
                    "hostIP": host_ip,
                    "hostIPs": [{"ip": host_ip}],
                    "podIP": pod_ip,
                    "podIPs": [{"ip": pod_ip}],
                    "startTime": ts,
                    "conditions": [
                        _cond("PodReadyToStartContainers", True, ts),
                        _cond("Initialized", True, ts),
                        _cond("ContainersReady", ready, ts, "ContainersNotReady"),
                        _cond(
                            "Ready",
                            ready and gates_open(pod),
                            ts,
                            "ContainersNotReady" if not ready else "ReadinessGatesNotReady",
                        ),
                    ],
                    "initContainerStatuses": _init_statuses(pod, ts),
                    "containerStatuses": _container_statuses(pod, ready, 0, ts, ts, None),
                }
            },
            ready_at=ready_at,
            recheck_at=None if ready else ready_at,
        )
    if crash and crash != handled_crash(pod):
        restarts = restart_count(pod) + 1
        last = {
            "terminated": {
                "exitCode": 137,
                "reason": "Error",
                "message": CRASH_MARK + crash,
                "startedAt": ts,
                "finishedAt": ts,
            }
        }
        ready_at = now + ready_delay
        return Decision(
            patch={
                "status": {
                    "conditions": [
                        _cond("ContainersReady", False, ts, "ContainersNotReady"),
                        _cond("Ready", False, ts, "ContainersNotReady"),
                    ],
                    "containerStatuses": _container_statuses(pod, False, restarts, ts, ts, last),
                }
            },
            ready_at=ready_at,
            recheck_at=ready_at,
        )

    if ready_at is None:
        ready_at = (started_at(pod) or now) + ready_delay
    containers_ready = now >= ready_at and annotations.get(ann.HOLD) != "true"
    pod_ready = containers_ready and gates_open(pod)
    recheck = ready_at if now < ready_at else None
    if condition(pod, "ContainersReady") == str(containers_ready) and condition(pod, "Ready") == str(
        pod_ready
    ):
        return Decision(recheck_at=recheck, ready_at=ready_at)
    statuses = pod["status"]["containerStatuses"]
    return Decision(
        patch={
            "status": {
                "conditions": [
                    _cond("ContainersReady", containers_ready, ts, "ContainersNotReady"),
                    _cond(
                        "Ready",
                        pod_ready,
                        ts,
                        "ContainersNotReady" if not containers_ready else "ReadinessGatesNotReady",
                    ),
                ],
                "containerStatuses": [{**s, "ready": containers_ready} for s in statuses],
            }
        },
        recheck_at=recheck,
        ready_at=ready_at,
    )
