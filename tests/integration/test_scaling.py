"""Coordinated scaling on the sim, observed through pod watch events as a user would: prefill and decode
grow and shrink in steps whose ready-progress skew stays within the rule's bound at every instant."""

from __future__ import annotations

import asyncio
import itertools
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType

from rbg_flows.kube.client import JSON_PATCH, KubeClient
from rbg_flows.kube.wait import is_ready
from rbg_flows.workflows.entity import RoleBasedGroupWorkflow

from .rbg_helpers import condition, create_rbg, entity_id, example, rbgs, wait_event, wait_rbg, wait_ready
from .test_placement import until_gpus_free
from .test_upgrade import watching

pytestmark = pytest.mark.sim
NAME = "pd-scaling"
ROLE_LABEL = "rolebasedgroup.workloads.x-k8s.io/role"
SKEW = Fraction(34, 100)
STEP_SUMMARY = re.compile(r"^(scale step \d+): ")


@dataclass
class ScaleObserver:
    """Ready, live pods per role at every pod watch event, and the worst lead of one role's progress
    (pods moved toward the target / distance) over another's, against the rule's bound
    max(maxSkew, one of the leading role's own pods)."""

    start: dict[str, int]
    target: dict[str, int]
    ready: dict[str, set[str]] = field(default_factory=dict)
    samples: list[dict[str, int]] = field(default_factory=list)
    recording: bool = False  # from the moment the watch's initial list is in (one event per pod)

    def on_event(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        role = (meta.get("labels") or {}).get(ROLE_LABEL)
        if role not in self.target:
            return
        pods = self.ready.setdefault(role, set())
        if event_type != "DELETED" and not meta.get("deletionTimestamp") and is_ready(pod):
            pods.add(meta["name"])
        else:
            pods.discard(meta["name"])
        if self.recording:
            self.samples.append(self.counts())

    def counts(self) -> dict[str, int]:
        return {role: len(self.ready.get(role, ())) for role in self.target}

    def progress(self, role: str, n: int) -> Fraction:
        start, target = self.start[role], self.target[role]
        moved = n - start if target >= start else start - n
        return Fraction(max(0, min(moved, abs(target - start))), abs(target - start))

    def violations(self) -> list[tuple[dict[str, int], str, Fraction]]:
        out = []
        for counts in self.samples:
            for a, b in itertools.permutations(self.target, 2):
                lead = self.progress(a, counts[a]) - self.progress(b, counts[b])
                if lead > max(SKEW, Fraction(1, abs(self.target[a] - self.start[a]))):
                    out.append((counts, f"{a} over {b}", lead))
        return out


def replicas(prefill: int, decode: int) -> list[dict[str, Any]]:
    return [
        {"op": "replace", "path": "/spec/roles/0/replicas", "value": prefill},
        {"op": "replace", "path": "/spec/roles/1/replicas", "value": decode},
    ]


async def scale_summaries(temporal_env: Any, workflow_id: str) -> list[str]:
    """The distinct step names of the operation's activity summaries, in order."""
    history = await temporal_env.client.get_workflow_handle(workflow_id).fetch_history()
    converter = temporal_env.client.data_converter.payload_converter
    steps: list[str] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        if event.user_metadata.HasField("summary"):
            match = STEP_SUMMARY.match(converter.from_payload(event.user_metadata.summary, str))
            if match and match[1] not in steps:
                steps.append(match[1])
    return steps


async def scaled(
    kube: KubeClient, ns: str, start: tuple[int, int], target: tuple[int, int]
) -> tuple[ScaleObserver, dict[str, Any]]:
    obs = ScaleObserver(dict(zip(("prefill", "decode"), start, strict=True)), {})
    obs.target = dict(zip(("prefill", "decode"), target, strict=True))
    async with watching(kube, ns, obs, name=NAME):
        obs.recording = True
        obj = await kube.patch(f"{rbgs(ns)}/{NAME}", replicas(*target), content_type=JSON_PATCH)
        rbg = await wait_ready(kube, ns, NAME, generation=obj["metadata"]["generation"], timeout=180)
    return obs, rbg


async def test_prefill_and_decode_scale_out_and_back_within_the_skew(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    await create_rbg(kube, namespace, example("coordinated-scaling.yaml"))
    await wait_ready(kube, namespace, NAME, generation=1, timeout=120)

    out, rbg = await scaled(kube, namespace, (1, 1), (6, 3))
    assert out.counts() == {"prefill": 6, "decode": 3}
    assert not out.violations(), out.violations()[:3]
    # It moved in steps: some instant had prefill part-way while decode had not finished.
    assert any(1 < s["prefill"] < 6 and s["decode"] < 3 for s in out.samples), out.samples
    assert all(s["prefill"] <= 6 and s["decode"] <= 3 for s in out.samples)
    assert [r["replicas"] for r in rbg["spec"]["roles"]] == [6, 3, 1]  # the spec is the user's
    assert rbg["status"]["phase"] == "Ready"
    await wait_event(kube, namespace, NAME, "ScaleStep", contains="scale step 1: prefill 1→2, decode 1→2")

    handle = temporal_env.client.get_workflow_handle(entity_id(cluster_id, namespace, NAME))
    # The status is written just before the operation returns to the entity, which then records it.
    for _ in range(200):
        state = await handle.query(RoleBasedGroupWorkflow.get_state)
        if [op for op in state.recent if op.kind == "scale"]:
            break
        await asyncio.sleep(0.05)
    (scale,) = [op for op in state.recent if op.kind == "scale"]
    steps = await scale_summaries(temporal_env, scale.workflow_id)
    assert steps == [f"scale step {n}" for n in range(1, 5)], steps

    back, rbg = await scaled(kube, namespace, (6, 3), (1, 1))
    assert back.counts() == {"prefill": 1, "decode": 1}
    assert not back.violations(), back.violations()[:3]
    assert any(1 < s["prefill"] < 6 and s["decode"] > 1 for s in back.samples), back.samples
    pods = await kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"{ROLE_LABEL}=prefill")
    # Scale-in removed the highest ordinals.
    live = [p["metadata"]["name"] for p in pods["items"] if not p["metadata"].get("deletionTimestamp")]
    assert live == [f"{NAME}-prefill-0"]


async def test_a_scale_the_cluster_cannot_hold_names_the_role_and_scales_back_when_reduced(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await until_gpus_free(kube)
    body = example("coordinated-scaling.yaml")
    # A whole node per pod: the sim's 16 GPU nodes hold 16 such pods.
    body["spec"]["roleTemplates"][0]["template"]["spec"]["containers"][0]["resources"]["limits"] = {
        "nvidia.com/gpu": "8"
    }
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, NAME, generation=1, timeout=120)

    path = f"{rbgs(namespace)}/{NAME}"
    too_big = await kube.patch(path, replicas(20, 10), content_type=JSON_PATCH)
    stuck = await wait_rbg(
        kube,
        namespace,
        NAME,
        lambda o: (condition(o, "Progressing") or {}).get("reason") == "Unschedulable",
        "Progressing=Unschedulable",
        timeout=120,
    )
    message = condition(stuck, "Progressing")["message"]  # type: ignore[index]
    assert re.search(r"role (prefill|decode): \d+ pods? unschedulable: .*nvidia.com/gpu", message), message
    assert stuck["status"]["phase"] == "Scaling"
    assert stuck["status"].get("observedGeneration") != too_big["metadata"]["generation"]
    await wait_event(kube, namespace, NAME, "Unschedulable", warning=True, contains="unschedulable")

    reduced = await kube.patch(path, replicas(2, 1), content_type=JSON_PATCH)
    rbg = await wait_ready(kube, namespace, NAME, generation=reduced["metadata"]["generation"], timeout=120)
    assert (condition(rbg, "Progressing") or {}).get("reason") != "Unschedulable"
    pods = (await kube.get(f"/api/v1/namespaces/{namespace}/pods"))["items"]
    live = sorted(p["metadata"]["name"] for p in pods if not p["metadata"].get("deletionTimestamp"))
    assert live[:3] == [f"{NAME}-decode-0", f"{NAME}-prefill-0", f"{NAME}-prefill-1"], live
    assert len([n for n in live if "-router-" not in n]) == 3, live
