"""One bad manifest must not take the orchestrator down: the malformed corpus applied beside a healthy
group ends, each, in a precise refusal; the worker stays alive and small; the healthy group is untouched.
And a transient API error, while it lasts, is visible in the group's status."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.sim.faultproxy import FaultProxyControl, FaultRule
from tests.corpus import Case, cases

from .conftest import SimCluster, scratch_namespace
from .orchestrator import Orchestrator
from .rbg_helpers import condition, create_rbg, example, is_true, rbgs, wait_event, wait_rbg, wait_ready

pytestmark = pytest.mark.sim

# A memory-safety bound, not a measurement: building the discovery file of an int32 role took 23 GB.
RSS_LIMIT_KB = 1024 * 1024
RSS_GROWTH_LIMIT_KB = 100 * 1024
# Each refusal is event-driven; this only bounds how long a broken orchestrator can hang the test.
REFUSAL_DEADLINE = 60.0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def worker_pid(orchestrator: Orchestrator) -> int:
    assert orchestrator.worker is not None and orchestrator.worker.proc is not None
    return orchestrator.worker.proc.pid


def refused(case: Case) -> Callable[[dict[str, Any]], bool]:
    def check(obj: dict[str, Any]) -> bool:
        if case.expect == "validation":
            c = condition(obj, "InvalidSpec")
            return bool(
                c and c["status"] == "True" and case.path in c["message"] and case.message in c["message"]
            )
        c = condition(obj, "Progressing")
        return bool(c and c["reason"] == "OperationFailed" and case.message in c["message"])

    return check


async def workload_generations(kube: KubeClient, ns: str) -> dict[str, int]:
    out = {}
    for kind in ("statefulsets", "deployments"):
        for item in (await kube.get(f"/apis/apps/v1/namespaces/{ns}/{kind}"))["items"]:
            out[f"{kind}/{item['metadata']['name']}"] = int(item["metadata"]["generation"])
    return out


async def refuse(kube: KubeClient, ns: str, case: Case) -> str:
    """Apply one case and wait for its refusal; returns what the user is told."""
    body = copy.deepcopy(case.manifest)
    if case.expect == "admission":
        with pytest.raises(ApiError) as err:
            await create_rbg(kube, ns, body)
        assert err.value.status == 422 and case.message in err.value.message, err.value.message
        return err.value.message
    await create_rbg(kube, ns, body)
    obj = await wait_rbg(kube, ns, case.name, refused(case), f"{case.file} refused", REFUSAL_DEADLINE)
    ctype = "InvalidSpec" if case.expect == "validation" else "Progressing"
    reason = "InvalidSpec" if case.expect == "validation" else "DeployFailed"
    await wait_event(kube, ns, case.name, reason, warning=True, contains=case.message)
    c = condition(obj, ctype)
    assert c is not None
    return str(c["message"])


async def test_the_corpus_is_refused_precisely_beside_a_healthy_group(
    kube: KubeClient, orchestrator: Orchestrator, namespace: str
) -> None:
    await create_rbg(kube, namespace, example("pd-disaggregation.yaml"))
    await wait_ready(kube, namespace, "pd-demo", generation=1)
    healthy = await workload_generations(kube, namespace)
    assert len(healthy) == 3

    corpus = {c.file: c for c in cases()}
    pid = worker_pid(orchestrator)
    async with scratch_namespace(kube, f"t-bad-input-{uuid.uuid4().hex[:5]}") as bad:
        # The case that once took the worker to 23 GB, alone, with the worker's memory before and after.
        before = rss_kb(pid)
        message = await refuse(kube, bad, corpus.pop("replicas-int32-max.yaml"))
        after = rss_kb(pid)
        print(f"int32 replicas: worker RSS {before} kB before, {after} kB after; told: {message}")
        assert "spec.roles[0].replicas: 2147483647 is more than 32768" in message
        assert after - before < RSS_GROWTH_LIMIT_KB

        # Everything else at once: no refusal waits on another.
        told = await asyncio.gather(*(refuse(kube, bad, c) for c in corpus.values()))
        for case, msg in zip(corpus.values(), told, strict=True):
            print(f"{case.file}: {msg[:200]}")

        # Nothing was created for a refused spec (the cpu: lots group got as far as its ConfigMap only).
        made = await workload_generations(kube, bad)
        assert made == {}, made

        assert orchestrator.worker is not None and orchestrator.worker.alive()
        assert orchestrator.restarts == 1  # never restarted behind our back
        final = rss_kb(pid)
        print(f"worker RSS after the whole corpus: {final} kB")
        assert final < RSS_LIMIT_KB

    # The healthy group saw none of it.
    rbg = await kube.get(f"{rbgs(namespace)}/pd-demo")
    assert is_true(rbg, "Ready") and rbg["status"]["observedGeneration"] == 1
    assert await workload_generations(kube, namespace) == healthy


@pytest.mark.fault_proxy
async def test_a_transient_error_is_visible_while_it_lasts(
    sim: SimCluster,
    kube: KubeClient,
    fault_proxy: str,
    temporal_address: str,
    crds: list[str],
    tmp_path: Path,
) -> None:
    control = FaultProxyControl(fault_proxy)
    async with scratch_namespace(kube, f"iso-retry-{uuid.uuid4().hex[:6]}") as ns:
        # Every apply of a StatefulSet answers 500 until the fault is lifted; the worker goes through the
        # fault proxy, the test does not.
        await control.set_rules(
            [FaultRule(verb="patch", resource="statefulsets", namespace=ns, fraction=1.0, action="error")]
        )
        orch = Orchestrator(
            temporal_address,
            sim.kubeconfig,
            f"retry-{ns}",
            tmp_path,
            [ns],
            worker_args=["--heartbeat-timeout=5"],
        ).start()
        try:
            await create_rbg(kube, ns, example("pd-disaggregation.yaml"))

            def retrying(obj: dict[str, Any]) -> bool:
                c = condition(obj, "Progressing")
                return bool(c and c["reason"] == "Retrying" and "500" in c["message"])

            obj = await wait_rbg(kube, ns, "pd-demo", retrying, "Progressing Retrying", timeout=120)
            message = condition(obj, "Progressing")["message"]  # type: ignore[index]
            print(f"while the fault lasts: {message}")
            assert message.startswith("apply ") and message.endswith("; retrying")
            await wait_event(kube, ns, "pd-demo", "Retrying", warning=True, contains="500")
            # `kubectl describe rbg` shows why it is stuck.
            described = sim.kubectl_run("describe", "rbg", "-n", ns, "pd-demo").stdout
            assert "Retrying" in described

            await control.set_rules([])
            done = await wait_ready(kube, ns, "pd-demo", generation=1, timeout=180)
            assert condition(done, "Progressing")["reason"] == "Settled"  # type: ignore[index]
        finally:
            await control.set_rules([])
            orch.stop()
