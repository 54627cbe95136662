"""The simulated kubelet's decisions for one pod (pure: pod in, status patch out)."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from rbg_flows.sim import annotations as ann
from rbg_flows.sim.podstatus import Decision, decide, handled_crash, parse_time, restart_count

JSON = dict[str, Any]
POD_IP, HOST_IP = "10.128.0.7", "172.30.0.11"
GATE = "example.com/traffic-ready"
# Wall-clock based, as the node simulator calls it: start times written into the pod are wall-clock.
T0 = float(int(time.time()))


def make_pod(*, annotations: dict[str, str] | None = None, gates: bool = False, init: bool = False) -> JSON:
    spec: JSON = {
        "nodeName": "gpu-a-nvl-0",
        "containers": [{"name": "main", "image": "vllm:1"}, {"name": "agent", "image": "agent:2"}],
    }
    if gates:
        spec["readinessGates"] = [{"conditionType": GATE}]
    if init:
        spec["initContainers"] = [
            {"name": "setup", "image": "busybox"},
            {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
        ]
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1", "annotations": annotations or {}},
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def apply(pod: JSON, d: Decision) -> JSON:
    """The API server's strategic merge of a status patch: conditions merge by type, lists else replace."""
    assert d.patch is not None
    out = copy.deepcopy(pod)
    status = out.setdefault("status", {})
    for key, value in d.patch["status"].items():
        if key == "conditions":
            merged = {c["type"]: c for c in status.get("conditions") or []}
            merged.update({c["type"]: c for c in value})
            status["conditions"] = list(merged.values())
        else:
            status[key] = value
    return out


def conds(d_or_pod: Decision | JSON) -> dict[str, str]:
    if isinstance(d_or_pod, Decision):
        assert d_or_pod.patch is not None
        src = d_or_pod.patch["status"]
    else:
        src = d_or_pod["status"]
    return {c["type"]: c["status"] for c in src.get("conditions", [])}


def step(pod: JSON, now: float, ready_at: float | None, delay: float = 2.0) -> Decision:
    return decide(pod, now=now, ready_at=ready_at, ready_delay=delay, pod_ip=POD_IP, host_ip=HOST_IP)


def started(pod: JSON | None = None, delay: float = 2.0) -> tuple[JSON, Decision]:
    """A pod after its first step (Running, not yet ready)."""
    pod = pod or make_pod()
    d = step(pod, T0, None, delay)
    return apply(pod, d), d


def ready_pod(pod: JSON | None = None) -> tuple[JSON, float]:
    p, d = started(pod)
    assert d.ready_at is not None
    d2 = step(p, d.ready_at + 0.1, d.ready_at)
    return apply(p, d2), d.ready_at


def test_fresh_pod_gets_running_patch() -> None:
    pod = make_pod()
    d = step(pod, T0, None, delay=2.0)
    assert d.patch is not None and not d.finalize
    s = d.patch["status"]
    assert s["phase"] == "Running"
    assert s["podIP"] == POD_IP and s["podIPs"] == [{"ip": POD_IP}]
    assert s["hostIP"] == HOST_IP and s["hostIPs"] == [{"ip": HOST_IP}]
    start = parse_time(s["startTime"])
    assert start is not None and abs(start - time.time()) < 5
    assert [c["name"] for c in s["containerStatuses"]] == ["main", "agent"]
    for cs in s["containerStatuses"]:
        assert cs["ready"] is False and cs["restartCount"] == 0 and "running" in cs["state"]
        assert cs["containerID"] == f"sim://uid-1/{cs['name']}/0"
    assert s["initContainerStatuses"] == []
    c = conds(d)
    assert c["Ready"] == "False" and c["ContainersReady"] == "False"
    assert c["Initialized"] == "True" and c["PodReadyToStartContainers"] == "True"
    ready = next(x for x in s["conditions"] if x["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady"
    assert d.ready_at == T0 + 2.0 and d.recheck_at == T0 + 2.0


def test_fresh_pod_ready_at_once_without_delay() -> None:
    d = step(make_pod(), T0, None, delay=0)
    assert d.patch is not None
    assert conds(d)["Ready"] == "True" and conds(d)["ContainersReady"] == "True"
    assert all(cs["ready"] for cs in d.patch["status"]["containerStatuses"])
    assert "reason" not in next(x for x in d.patch["status"]["conditions"] if x["type"] == "Ready")
    assert d.recheck_at is None


def test_running_pod_waits_then_becomes_ready() -> None:
    pod, d = started()
    assert d.ready_at is not None
    early = step(pod, T0 + 1, d.ready_at)
    assert early.patch is None and early.recheck_at == d.ready_at  # nothing changes yet
    late = step(pod, d.ready_at, d.ready_at)
    assert late.patch is not None and late.recheck_at is None
    assert conds(late) == {"ContainersReady": "True", "Ready": "True"}
    assert all(cs["ready"] for cs in late.patch["status"]["containerStatuses"])
    # Once applied, another look finds nothing to do.
    done = step(apply(pod, late), d.ready_at + 5, d.ready_at)
    assert done.patch is None and done.recheck_at is None and not done.finalize


def test_restarted_simulator_derives_ready_at_from_start_time() -> None:
    pod, _ = started()
    start = parse_time(pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"])
    assert start is not None
    d = step(pod, start + 0.5, None)  # the simulator lost its timers
    assert d.patch is None and d.ready_at == start + 2.0 and d.recheck_at == start + 2.0
    d = step(pod, start + 2.5, None)
    assert d.patch is not None and conds(d)["Ready"] == "True"


def test_readiness_gate_keeps_pod_unready() -> None:
    pod, ready_at = ready_pod(make_pod(gates=True))
    assert conds(pod)["ContainersReady"] == "True"
    assert conds(pod)["Ready"] == "False"
    ready = next(x for x in pod["status"]["conditions"] if x["type"] == "Ready")
    assert ready["reason"] == "ReadinessGatesNotReady"
    assert step(pod, ready_at + 1, ready_at).patch is None  # stable while the gate is closed
    # Another controller opens the gate.
    pod["status"]["conditions"].append({"type": GATE, "status": "True"})
    d = step(pod, ready_at + 2, ready_at)
    assert conds(d) == {"ContainersReady": "True", "Ready": "True"}
    assert conds(apply(pod, d))[GATE] == "True"  # the gate condition is not overwritten


def test_readiness_gate_on_fresh_pod_without_delay() -> None:
    d = step(make_pod(gates=True), T0, None, delay=0)
    assert conds(d)["ContainersReady"] == "True" and conds(d)["Ready"] == "False"
    assert d.recheck_at is None  # nothing to wait for: the gate's owner patches the pod
    p = apply(make_pod(gates=True), d)
    p["status"]["conditions"].append({"type": GATE, "status": "False"})
    assert step(p, T0 + 1, T0, delay=0).patch is None


def test_hold_keeps_pod_unready() -> None:
    held = make_pod(annotations={ann.HOLD: "true"})
    d = step(held, T0, None, delay=0)
    assert conds(d)["Ready"] == "False" and conds(d)["ContainersReady"] == "False"
    pod, d = started(held)
    assert d.ready_at is not None
    late = step(pod, d.ready_at + 10, d.ready_at)
    assert late.patch is None and late.recheck_at is None  # unready, and no timer: the watch brings release
    pod["metadata"]["annotations"] = {}
    released = step(pod, d.ready_at + 11, d.ready_at)
    assert conds(released)["Ready"] == "True"


def test_hold_on_a_ready_pod_makes_it_unready() -> None:
    pod, ready_at = ready_pod()
    pod["metadata"]["annotations"][ann.HOLD] = "true"
    d = step(pod, ready_at + 5, ready_at)
    assert conds(d) == {"ContainersReady": "False", "Ready": "False"}
    assert d.patch is not None
    assert not any(cs["ready"] for cs in d.patch["status"]["containerStatuses"])
    pod["metadata"]["annotations"][ann.HOLD] = "false"
    assert conds(step(apply(pod, d), ready_at + 6, ready_at))["Ready"] == "True"


def test_crash_increments_restart_count_once_per_token() -> None:
    pod, _ = ready_pod()
    assert handled_crash(pod) is None and restart_count(pod) == 0
    pod["metadata"]["annotations"][ann.CRASH] = "tok-1"
    now = T0 + 100
    d = step(pod, now, None)
    assert d.patch is not None
    assert conds(d) == {"ContainersReady": "False", "Ready": "False"}
    assert d.ready_at == now + 2.0 and d.recheck_at == now + 2.0
    for cs in d.patch["status"]["containerStatuses"]:
        assert cs["restartCount"] == 1 and cs["ready"] is False
        assert cs["lastState"]["terminated"]["exitCode"] == 137
        assert cs["containerID"].endswith("/1")
    pod = apply(pod, d)
    assert handled_crash(pod) == "tok-1" and restart_count(pod) == 1

    # The same token again: no second crash.
    again = step(pod, now + 1, d.ready_at)
    assert again.patch is None and again.recheck_at == d.ready_at
    assert d.ready_at is not None
    recovered = step(pod, d.ready_at, d.ready_at)
    assert conds(recovered)["Ready"] == "True"
    pod = apply(pod, recovered)
    assert restart_count(pod) == 1 and handled_crash(pod) == "tok-1"  # the mark survives the ready patch
    assert step(pod, d.ready_at + 50, d.ready_at).patch is None

    # A new token is a new crash.
    pod["metadata"]["annotations"][ann.CRASH] = "tok-2"
    d2 = step(pod, now + 200, d.ready_at)
    pod = apply(pod, d2)
    assert restart_count(pod) == 2 and handled_crash(pod) == "tok-2"


def test_fail_annotation_fails_the_pod() -> None:
    pod, _ = ready_pod()
    pod["metadata"]["annotations"][ann.FAIL] = "true"
    d = step(pod, T0 + 10, None)
    assert d.patch is not None and not d.finalize
    s = d.patch["status"]
    assert s["phase"] == "Failed" and s["reason"] == "Error"
    assert conds(d) == {"Ready": "False", "ContainersReady": "False"}
    assert all(c["reason"] == "PodFailed" for c in s["conditions"])
    for cs in s["containerStatuses"]:
        assert cs["ready"] is False and cs["state"]["terminated"]["exitCode"] == 1
    # A failed pod is left alone afterwards.
    assert step(apply(pod, d), T0 + 20, None) == Decision()


def test_fail_annotation_on_a_fresh_pod() -> None:
    d = step(make_pod(annotations={ann.FAIL: "true"}), T0, None)
    assert d.patch is not None and d.patch["status"]["phase"] == "Failed"
    other = step(make_pod(annotations={ann.FAIL: "false"}), T0, None)
    assert other.patch is not None and other.patch["status"]["phase"] == "Running"


@pytest.mark.parametrize("phase", ["Pending", "Running", "Failed"])
def test_deletion_timestamp_finalizes(phase: str) -> None:
    pod = make_pod(annotations={ann.CRASH: "x"})
    pod["status"]["phase"] = phase
    pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    d = step(pod, T0, None)
    assert d.finalize and d.patch is None


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_terminal_pods_are_left_alone(phase: str) -> None:
    pod = make_pod(annotations={ann.CRASH: "x", ann.FAIL: "true"})
    pod["status"]["phase"] = phase
    assert step(pod, T0, None) == Decision()


def test_init_containers_and_native_sidecars() -> None:
    d = step(make_pod(init=True), T0, None)
    assert d.patch is not None
    init = {s["name"]: s for s in d.patch["status"]["initContainerStatuses"]}
    assert list(init) == ["setup", "proxy"]
    assert init["setup"]["state"]["terminated"]["exitCode"] == 0
    assert init["setup"]["state"]["terminated"]["reason"] == "Completed"
    assert init["setup"]["ready"] is False and init["setup"]["started"] is False
    assert "running" in init["proxy"]["state"] and "terminated" not in init["proxy"]["state"]
    assert init["proxy"]["ready"] is True and init["proxy"]["started"] is True
    # Sidecars are not reported as regular containers.
    assert [c["name"] for c in d.patch["status"]["containerStatuses"]] == ["main", "agent"]


def test_parse_time() -> None:
    assert parse_time("1970-01-01T00:01:00Z") == 60.0
    assert parse_time(None) is None and parse_time("") is None and parse_time("yesterday") is None
