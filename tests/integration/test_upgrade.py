"""Coordinated upgrades, rollback, pause, resume and abort, driven through the Kubernetes API and the
entity workflow's Updates, observed through pod watch events as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from temporalio.client import WorkflowUpdateFailedError

from rbg_flows.kube.client import JSON_PATCH, KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.kube.wait import is_ready, wait_for
from rbg_flows.rollout.observer import RolloutObserver, pod_images
from rbg_flows.workflows.entity import RoleBasedGroupWorkflow

from .conftest import SimCluster
from .rbg_helpers import (
    NAME_LABEL,
    condition,
    create_rbg,
    entity_id,
    example,
    kubeconfig_with_user,
    rbgs,
    token_for,
    wait_event,
    wait_rbg,
    wait_ready,
)

pytestmark = pytest.mark.sim
OLD, NEW, NEWER = "lmsysorg/sglang:v0.5.4", "lmsysorg/sglang:v0.5.5", "lmsysorg/sglang:v0.5.6"
NAME = "pd-upgrade"


def set_engine_image(image: str) -> list[dict[str, Any]]:
    return [
        {"op": "replace", "path": "/spec/roleTemplates/0/template/spec/containers/0/image", "value": image}
    ]


def observer(image: str) -> RolloutObserver:
    return RolloutObserver(
        {"prefill": 4, "decode": 4}, lambda pod: image in pod_images(pod), pairs=[("prefill", "decode")]
    )


class PodObserver(Protocol):
    def on_event(self, event_type: str, pod: dict[str, Any]) -> None: ...


@contextlib.asynccontextmanager
async def watching(
    kube: KubeClient,
    ns: str,
    *observers: PodObserver,
    name: str = NAME,
    collection: str = "",
    selector: str = "",
) -> AsyncIterator[None]:
    """Feed the group's pod watch events (or those of `collection` selected by `selector`) to the
    observers while the block runs."""
    synced = asyncio.Event()

    def on_event(event_type: str, pod: dict[str, Any]) -> None:
        for o in observers:
            o.on_event(event_type, pod)

    task = asyncio.create_task(
        list_and_watch(
            kube,
            collection or f"/api/v1/namespaces/{ns}/pods",
            on_event,
            on_synced=synced.set,
            params={"labelSelector": selector or f"{NAME_LABEL}={name}"},
        )
    )
    await synced.wait()
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def observing(kube: KubeClient, ns: str, image: str) -> AsyncIterator[RolloutObserver]:
    obs = observer(image)
    async with watching(kube, ns, obs):
        yield obs


async def deployed(kube: KubeClient, ns: str) -> dict[str, Any]:
    await create_rbg(kube, ns, example("coordinated-upgrade.yaml"))
    return await wait_ready(kube, ns, NAME, generation=1, timeout=120)


async def change(kube: KubeClient, ns: str, patch: list[dict[str, Any]]) -> int:
    obj = await kube.patch(f"{rbgs(ns)}/{NAME}", patch, content_type=JSON_PATCH)
    return int(obj["metadata"]["generation"])


async def group_revisions(kube: KubeClient, ns: str) -> list[dict[str, Any]]:
    items = (
        await kube.get(
            f"/apis/apps/v1/namespaces/{ns}/controllerrevisions", labelSelector=f"{NAME_LABEL}={NAME}"
        )
    )["items"]
    ours = [r for r in items if r["metadata"]["ownerReferences"][0]["kind"] == "RoleBasedGroup"]
    return sorted(ours, key=lambda r: r["revision"])


async def role_images(kube: KubeClient, ns: str) -> dict[str, set[tuple[str, ...]]]:
    pods = (await kube.get(f"/api/v1/namespaces/{ns}/pods", labelSelector=f"{NAME_LABEL}={NAME}"))["items"]
    out: dict[str, set[tuple[str, ...]]] = {}
    for p in pods:
        if not p["metadata"].get("deletionTimestamp"):
            out.setdefault(p["metadata"]["labels"]["rolebasedgroup.workloads.x-k8s.io/role"], set()).add(
                pod_images(p)
            )
    return out


async def until(predicate: Any, what: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def settled_after(kube: KubeClient, ns: str, generation: int, what: str) -> dict[str, Any]:
    """The group once a generation newer than `generation` (e.g. a rollback's) is observed and Ready."""
    return await wait_rbg(
        kube,
        ns,
        NAME,
        lambda o: (
            o["metadata"]["generation"] > generation
            and (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
            and (condition(o, "Ready") or {}).get("status") == "True"
        ),
        what,
        timeout=120,
    )


def entity(temporal_env: Any, cluster_id: str, ns: str) -> Any:
    return temporal_env.client.get_workflow_handle(entity_id(cluster_id, ns, NAME))


async def settled(temporal_env: Any, cluster_id: str, ns: str, generation: int) -> Any:
    """The entity's state once it has recorded the operation for `generation` (the status is written
    just before the operation returns to it)."""
    handle = entity(temporal_env, cluster_id, ns)
    for _ in range(200):
        state = await handle.query(RoleBasedGroupWorkflow.get_state)
        if state.settled_generation >= generation and state.current is None:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"generation {generation} not settled: {state}")


async def test_coordinated_upgrade_keeps_the_skew_and_makes_one_revision(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await deployed(kube, namespace)
    assert [r["revision"] for r in await group_revisions(kube, namespace)] == [1]
    in_progress: list[str] = []

    def done(o: dict[str, Any]) -> bool:
        in_progress.append((condition(o, "RollingUpdateInProgress") or {}).get("status", ""))
        st = o.get("status") or {}
        return st.get("observedGeneration") == gen and (condition(o, "Ready") or {}).get("status") == "True"

    async with observing(kube, namespace, NEW) as obs:
        gen = await change(kube, namespace, set_engine_image(NEW))
        rbg = await wait_rbg(kube, namespace, NAME, done, "upgrade done", timeout=120)
    assert obs.counts() == {"prefill": 4, "decode": 4}
    assert obs.max_skew <= 0.25, (obs.max_skew, obs.worst)
    assert obs.max_skew > 0  # the roles did move in steps, not both at once
    assert "True" in in_progress and condition(rbg, "RollingUpdateInProgress")["status"] == "False"  # type: ignore[index]
    # Every pod replaced exactly once.
    assert all(obs.replacements(name) == 1 for name in obs.incarnations), obs.incarnations
    revisions = await group_revisions(kube, namespace)
    assert [r["revision"] for r in revisions] == [1, 2]
    assert (
        rbg["status"]["currentRevision"]
        == rbg["status"]["updateRevision"]
        == revisions[1]["metadata"]["name"]
    )
    assert rbg["status"]["phase"] == "Ready"
    await wait_event(kube, namespace, NAME, "UpgradeSucceeded")
    router = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{NAME}-router")
    assert router["metadata"]["generation"] == 1  # the router's template did not change: not touched


async def test_pause_holds_the_rollout_and_resume_finishes_it(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    await deployed(kube, namespace)
    handle = entity(temporal_env, cluster_id, namespace)
    async with observing(kube, namespace, NEW) as obs:
        gen = await change(kube, namespace, set_engine_image(NEW))
        await until(lambda: sum(obs.counts().values()) >= 1, "a first pod on the new image")
        assert "holds" in await handle.execute_update(RoleBasedGroupWorkflow.pause)
        rbg = await wait_rbg(
            kube, namespace, NAME, lambda o: (o.get("status") or {}).get("phase") == "Paused", "Paused"
        )
        assert condition(rbg, "Paused")["status"] == "True"  # type: ignore[index]
        # Paused is written once the step in flight has finished (its pods Ready): from then on nothing
        # moves, for several readiness periods.
        held = obs.counts()
        await asyncio.sleep(4)
        assert obs.counts() == held
        assert sum(held.values()) < 8
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(RoleBasedGroupWorkflow.pause)
        assert "already paused" in str(refused.value.cause)
        # The Temporal UI's way, signals: a refused one (a second pause) is only logged, and the
        # accepted resume lets the rollout finish.
        await handle.signal("request_pause")
        await handle.signal("request_resume")
        rbg = await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    assert obs.counts() == {"prefill": 4, "decode": 4}
    assert obs.max_skew <= 0.25
    assert condition(rbg, "Paused")["status"] == "False"  # type: ignore[index]
    await wait_event(kube, namespace, NAME, "RolloutPaused")
    await wait_event(kube, namespace, NAME, "RolloutResumed")


async def test_rollback_to_revision_1_brings_pods_and_spec_back_keeping_replicas(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    await deployed(kube, namespace)
    gen = await change(kube, namespace, set_engine_image(NEW))
    await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    # A scale after the upgrade: the rollback keeps it (like `kubectl rollout undo`).
    gen = await change(kube, namespace, [{"op": "replace", "path": "/spec/roles/2/replicas", "value": 2}])
    await wait_ready(kube, namespace, NAME, generation=gen, timeout=60)
    assert [r["revision"] for r in await group_revisions(kube, namespace)] == [1, 2]  # scaling makes none

    handle = entity(temporal_env, cluster_id, namespace)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(RoleBasedGroupWorkflow.rollback, 9)
    assert "revision 9 not found" in str(refused.value.cause)
    async with observing(kube, namespace, OLD) as obs:
        try:
            answer = await handle.execute_update(RoleBasedGroupWorkflow.rollback, 1)
        except WorkflowUpdateFailedError as e:
            st = await handle.query(RoleBasedGroupWorkflow.get_state)
            raise AssertionError(
                f"rollback refused: {e.cause} {st.revisions} {st.recent} {st.current}"
            ) from e
        assert "revision 1" in answer
        rbg = await settled_after(kube, namespace, gen, "rolled back")
    assert rbg["spec"]["roleTemplates"][0]["template"]["spec"]["containers"][0]["image"] == OLD
    assert rbg["spec"]["roles"][2]["replicas"] == 2
    st = await settled(temporal_env, cluster_id, namespace, rbg["metadata"]["generation"])
    assert obs.counts() == {"prefill": 4, "decode": 4}, st.recent
    assert obs.max_skew <= 0.25
    images = await role_images(kube, namespace)
    assert images["prefill"] == images["decode"] == {(OLD,)}
    revisions = await group_revisions(kube, namespace)
    # Revision 1's spec is the newest again, renumbered as Deployments and StatefulSets do.
    assert [r["revision"] for r in revisions] == [2, 3]
    assert rbg["status"]["currentRevision"] == revisions[1]["metadata"]["name"]
    await wait_event(kube, namespace, NAME, "RollbackRequested", contains="revision 1")
    await wait_event(kube, namespace, NAME, "RollbackSucceeded")


async def test_abort_mid_upgrade_restores_the_previous_revision(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    first = await deployed(kube, namespace)
    handle = entity(temporal_env, cluster_id, namespace)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(RoleBasedGroupWorkflow.abort)
    assert "no upgrade is in progress" in str(refused.value.cause)
    async with observing(kube, namespace, NEW) as obs:
        await change(kube, namespace, set_engine_image(NEW))
        await until(lambda: sum(obs.counts().values()) >= 2, "pods on the new image")
        await handle.execute_update(RoleBasedGroupWorkflow.abort)
        rbg = await settled_after(kube, namespace, 2, "aborted")
        assert obs.counts() == {"prefill": 0, "decode": 0}
    assert rbg["spec"] == first["spec"]
    images = await role_images(kube, namespace)
    assert images["prefill"] == images["decode"] == {(OLD,)}
    assert rbg["status"]["currentRevision"] == first["status"]["currentRevision"]
    await wait_event(kube, namespace, NAME, "AbortRequested")
    await wait_event(kube, namespace, NAME, "AbortSucceeded")
    # The upgrade that was cut short is not reported as a failure.
    events = (await kube.get(f"/api/v1/namespaces/{namespace}/events"))["items"]
    assert not [e["reason"] for e in events if e["reason"].endswith("Failed")]


async def test_back_to_back_changes_end_on_the_newest_without_extra_churn(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await deployed(kube, namespace)
    obs, first_wave = observer(NEWER), observer(NEW)
    async with watching(kube, namespace, obs, first_wave):
        await change(kube, namespace, set_engine_image(NEW))
        await until(lambda: sum(first_wave.counts().values()) >= 2, "pods on the first new image")
        gen = await change(kube, namespace, set_engine_image(NEWER))
        await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    images = await role_images(kube, namespace)
    assert images["prefill"] == images["decode"] == {(NEWER,)}
    for name, seen in obs.incarnations.items():
        # Each pod is replaced once, or twice if it had reached the first new image: never more.
        reached_first = any(new for _, new in first_wave.incarnations.get(name, []))
        assert obs.replacements(name) <= (2 if reached_first else 1), (name, seen)
    assert [r["revision"] for r in await group_revisions(kube, namespace)] == [1, 2, 3]


async def test_kill_9_of_the_worker_mid_upgrade_resumes_at_the_same_step(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    await deployed(kube, namespace)
    async with observing(kube, namespace, NEW) as obs:
        gen = await change(kube, namespace, set_engine_image(NEW))
        await until(lambda: sum(obs.counts().values()) >= 2, "pods on the new image")
        orchestrator.kill_worker()
        try:
            await asyncio.sleep(1)
        finally:
            orchestrator.start_worker()
        await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    assert obs.counts() == {"prefill": 4, "decode": 4}
    assert obs.max_skew <= 0.25
    assert all(obs.replacements(name) == 1 for name in obs.incarnations), obs.incarnations
    state = await settled(temporal_env, cluster_id, namespace, gen)
    upgrades = [op for op in state.recent if op.kind == "upgrade"]
    assert [op.outcome for op in upgrades] == ["ready"], state.recent  # one operation, resumed


def cli(
    sim: SimCluster,
    temporal_address: str,
    ns: str,
    *args: str,
    kubectl: bool = False,
    kubeconfig: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The controls as a user runs them: `rbg-flows VERB`, or through kubectl's plugin mechanism."""
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(kubeconfig or sim.direct_kubeconfig),
        "RBG_TEMPORAL_ADDRESS": temporal_address,
    }
    cmd = [str(sim.kubectl), "rbg", *args] if kubectl else [str(bindir / "rbg-flows"), *args]
    return subprocess.run([*cmd, "-n", ns], capture_output=True, text=True, env=env, timeout=60, check=False)


async def viewer(kube: KubeClient, sim: SimCluster, ns: str, out: Path) -> Path:
    """A kubeconfig of someone who may read the namespace's groups and revisions, not patch them."""
    await kube.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "viewer"}},
    )
    rules = [
        {"apiGroups": ["workloads.x-k8s.io"], "resources": ["rolebasedgroups"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["controllerrevisions"], "verbs": ["list"]},
    ]
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    await kube.create(
        f"{rbac}/namespaces/{ns}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "viewer"},
            "rules": rules,
        },
    )
    await kube.create(
        f"{rbac}/namespaces/{ns}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns}],
        },
    )
    token = await token_for(kube, ns, "viewer")
    return kubeconfig_with_user(sim.direct_kubeconfig, "viewer", {"token": token}, out / "viewer.kubeconfig")


async def test_cli_and_kubectl_plugin_show_history_diff_status_and_refuse_with_the_reason(
    sim: SimCluster,
    kube: KubeClient,
    orchestrator: Any,
    temporal_address: str,
    temporal_env: Any,
    namespace: str,
    cluster_id: str,
    tmp_path: Path,
) -> None:
    await deployed(kube, namespace)
    gen = await change(kube, namespace, set_engine_image(NEW))
    await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)

    history = cli(sim, temporal_address, namespace, "history", NAME)
    assert history.returncode == 0, history.stderr
    rows = [line.split() for line in history.stdout.splitlines()[1:]]
    assert [r[0] for r in rows] == ["1", "2*"]
    assert "initial" in rows[0] and "changed: prefill, decode" in history.stdout
    assert (
        cli(sim, temporal_address, namespace, "rollout", "history", NAME, kubectl=True).stdout
        == history.stdout
    )

    diff = cli(sim, temporal_address, namespace, "diff", NAME, "--revision", "1")
    assert diff.returncode == 0, diff.stderr
    changed = [
        line for line in diff.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert changed == [f"-      - image: {OLD}", f"+      - image: {NEW}"], diff.stdout

    status = cli(sim, temporal_address, namespace, "status", NAME, "--once")
    assert status.returncode == 0, status.stderr
    assert "phase: Ready" in status.stdout and "prefill" in status.stdout and "4/4" in status.stdout

    refused = cli(sim, temporal_address, namespace, "rollback", NAME, "--to-revision", "9")
    assert refused.returncode == 1 and "revision 9 not found (known revisions: 1, 2)" in refused.stderr
    refused = cli(sim, temporal_address, namespace, "rollout", "abort", NAME, kubectl=True)
    assert refused.returncode == 1 and "no upgrade is in progress" in refused.stderr
    refused = cli(sim, temporal_address, namespace, "resume", NAME)
    assert refused.returncode == 1 and "not paused" in refused.stderr
    # Someone who may read the group but not patch it sees it, and cannot steer it: the controls go
    # through Temporal, so the CLI asks the API server first (a SelfSubjectAccessReview).
    as_viewer = await viewer(kube, sim, namespace, tmp_path)
    seen = cli(
        sim, temporal_address, namespace, "history", NAME, "--cluster-id", cluster_id, kubeconfig=as_viewer
    )
    assert seen.returncode == 0, seen.stderr
    pause = cli(
        sim, temporal_address, namespace, "pause", NAME, "--cluster-id", cluster_id, kubeconfig=as_viewer
    )
    assert pause.returncode == 1 and f"may not patch RoleBasedGroup {namespace}/{NAME}" in pause.stderr, (
        pause.stderr
    )
    assert not (
        await entity(temporal_env, cluster_id, namespace).query(RoleBasedGroupWorkflow.get_state)
    ).paused

    # `kubectl rbg rollout undo` goes back to the revision before the current one.
    undo = cli(sim, temporal_address, namespace, "rollout", "undo", NAME, kubectl=True)
    assert undo.returncode == 0, undo.stderr
    assert "revision 1" in undo.stdout
    rbg = await settled_after(kube, namespace, gen, "undone")
    assert rbg["spec"]["roleTemplates"][0]["template"]["spec"]["containers"][0]["image"] == OLD


async def test_a_deployment_role_rolls_through_its_own_strategy_and_nothing_else_moves(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await deployed(kube, namespace)
    apps = f"/apis/apps/v1/namespaces/{namespace}"
    before = {
        r: (await kube.get(f"{apps}/statefulsets/{NAME}-{r}"))["metadata"]["generation"]
        for r in ("prefill", "decode")
    }
    router = "/spec/roles/2/template/spec/containers/0/image"
    gen = await change(kube, namespace, [{"op": "replace", "path": router, "value": NEW}])
    rbg = await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    images = await role_images(kube, namespace)
    assert images["router"] == {(NEW,)} and images["prefill"] == {(OLD,)}
    after = {
        r: (await kube.get(f"{apps}/statefulsets/{NAME}-{r}"))["metadata"]["generation"]
        for r in ("prefill", "decode")
    }
    assert after == before
    deployment = await kube.get(f"{apps}/deployments/{NAME}-router")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert (
        rbg["status"]["currentRevision"] == (await group_revisions(kube, namespace))[-1]["metadata"]["name"]
    )
    await wait_event(kube, namespace, NAME, "UpgradeSucceeded", contains="revision 2")


@pytest.mark.lws
async def test_a_leaderworkerset_role_rolls_through_its_rollout_fields(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await create_rbg(kube, namespace, example("pd-disaggregation-lws.yaml"))
    await wait_ready(kube, namespace, "pd-lws", generation=1, timeout=120)
    path = "/spec/roles/0/template/spec/containers/0/image"
    obj = await kube.patch(
        f"{rbgs(namespace)}/pd-lws", [{"op": "replace", "path": path, "value": NEW}], content_type=JSON_PATCH
    )
    await wait_ready(kube, namespace, "pd-lws", generation=obj["metadata"]["generation"], timeout=120)
    pods = (
        await kube.get(
            f"/api/v1/namespaces/{namespace}/pods",
            labelSelector="leaderworkerset.sigs.k8s.io/name=pd-lws-prefill",
        )
    )["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 2 and all(pod_images(p) == (NEW,) and is_ready(p) for p in live)
    decode = await kube.get(
        f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{namespace}/leaderworkersets/pd-lws-decode"
    )
    assert decode["metadata"]["generation"] == 1  # its template did not change
    await wait_event(kube, namespace, "pd-lws", "UpgradeSucceeded")


async def test_maxsurge_adds_pods_while_a_statefulset_role_rolls_and_reclaims_them(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    body = example("coordinated-upgrade.yaml")
    for role in body["spec"]["roles"][:2]:
        role["rolloutStrategy"] = {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, NAME, generation=1, timeout=120)
    peak: dict[str, int] = {}
    alive: dict[str, set[str]] = {}

    class Counter(RolloutObserver):
        def on_event(self, event_type: str, pod: dict[str, Any]) -> None:
            super().on_event(event_type, pod)
            role = pod["metadata"]["labels"].get("rolebasedgroup.workloads.x-k8s.io/role", "")
            names = alive.setdefault(role, set())
            if event_type == "DELETED":
                names.discard(pod["metadata"]["name"])
            else:
                names.add(pod["metadata"]["name"])
            peak[role] = max(peak.get(role, 0), len(names))

    counter = Counter(
        {"prefill": 4, "decode": 4}, lambda p: NEW in pod_images(p), pairs=[("prefill", "decode")]
    )
    async with watching(kube, namespace, counter):
        gen = await change(kube, namespace, set_engine_image(NEW))
        await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
        await until(lambda: len(alive["prefill"]) == len(alive["decode"]) == 4, "surge pods reclaimed")
    assert peak["prefill"] == peak["decode"] == 5  # one surge pod each, never more
    assert counter.counts() == {"prefill": 4, "decode": 4}
    assert counter.max_skew <= 0.25
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{NAME}-prefill")
    assert sts["spec"]["replicas"] == 4 and sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 0


async def test_a_role_dropped_from_the_spec_is_deleted_and_the_others_stay(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await deployed(kube, namespace)
    apps = f"/apis/apps/v1/namespaces/{namespace}"
    prefill = await kube.get(f"{apps}/statefulsets/{NAME}-prefill")
    gen = await change(kube, namespace, [{"op": "remove", "path": "/spec/roles/2"}])
    await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    assert await kube.get_or_none(f"{apps}/deployments/{NAME}-router") is None
    await wait_for(
        kube, f"/api/v1/namespaces/{namespace}/pods", lambda o: not any("router" in n for n in o), timeout=60
    )
    after = await kube.get(f"{apps}/statefulsets/{NAME}-prefill")
    assert after["metadata"]["generation"] == prefill["metadata"]["generation"]  # not touched
    config = await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{NAME}")
    assert "router" not in config["data"]["config.yaml"]
    assert [r["revision"] for r in await group_revisions(kube, namespace)] == [1, 2]


async def test_rollout_order_upgrades_roles_one_after_another_and_rollback_reverses_it(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    body = example("coordinated-upgrade.yaml")
    body["spec"].pop("coordination")
    body["spec"]["rolloutOrder"] = ["decode", "prefill"]
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, NAME, generation=1, timeout=120)

    def first_new(role: str) -> int:
        """Position of the first new pod of `role` among every new pod seen, in event order."""
        return next(i for i, (r, _) in enumerate(obs_log) if r == role)

    obs_log: list[tuple[str, int]] = []

    class Ordered(RolloutObserver):
        def on_event(self, event_type: str, pod: dict[str, Any]) -> None:
            before = self.counts()
            super().on_event(event_type, pod)
            for role, n in self.counts().items():
                if n > before.get(role, 0):
                    obs_log.append((role, n))

    def ordered(image: str) -> Ordered:
        return Ordered({"prefill": 4, "decode": 4}, lambda p: image in pod_images(p))

    forward = ordered(NEW)
    async with watching(kube, namespace, forward):
        gen = await change(kube, namespace, set_engine_image(NEW))
        await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    # Every decode pod was new before the first prefill pod moved.
    assert [n for r, n in obs_log[:4]] == [1, 2, 3, 4] and {r for r, _ in obs_log[:4]} == {"decode"}
    assert first_new("prefill") == 4

    obs_log.clear()
    back = ordered(OLD)
    async with watching(kube, namespace, back):
        await entity(temporal_env, cluster_id, namespace).execute_update(RoleBasedGroupWorkflow.rollback, 1)
        await settled_after(kube, namespace, gen, "rolled back")
    # Reverse order on the way back: prefill first. (The watch's initial list adds nothing: no pod is
    # on the old image when it starts.)
    assert {r for r, _ in obs_log[:4]} == {"prefill"} and first_new("decode") == 4


async def test_a_rule_partition_keeps_its_share_of_pods_old_across_upgrades(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    body = example("coordinated-upgrade.yaml")
    body["spec"]["coordination"][0]["strategy"]["rollingUpdate"]["partition"] = "50%"
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, NAME, generation=1, timeout=120)
    for image in (NEW, NEWER):  # the second one starts from a settled group with a floor above 0
        async with observing(kube, namespace, image) as obs:
            gen = await change(kube, namespace, set_engine_image(image))
            await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
        assert obs.counts() == {"prefill": 2, "decode": 2}, image  # ordinals 2 and 3 only
        assert obs.max_skew <= 0.25, (image, obs.worst)
        moved = sorted(name for name, seen in obs.incarnations.items() if len(seen) > 1)
        assert moved == [f"{NAME}-{r}-{i}" for r in ("decode", "prefill") for i in (2, 3)], moved


async def test_a_template_and_replicas_change_is_an_upgrade_at_the_old_size_then_a_scale(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    await deployed(kube, namespace)
    both = [*set_engine_image(NEW), {"op": "replace", "path": "/spec/roles/0/replicas", "value": 6}]
    async with observing(kube, namespace, NEW) as obs:
        gen = await change(kube, namespace, both)
        await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    state = await settled(temporal_env, cluster_id, namespace, gen)
    assert [op.kind for op in state.recent if op.generation == gen] == ["upgrade", "scale"]
    # The upgrade rolled the 4 existing prefill pods (each replaced once); the 2 new ones came with the scale.
    assert obs.counts() == {"prefill": 6, "decode": 4}
    existing = [f"{NAME}-prefill-{i}" for i in range(4)]
    assert all(obs.replacements(name) == 1 for name in existing)
    assert all(obs.replacements(f"{NAME}-prefill-{i}") == 0 for i in (4, 5))
    assert [r["revision"] for r in await group_revisions(kube, namespace)] == [1, 2]


async def test_a_scale_during_a_paused_upgrade_keeps_its_progress_and_follows_it(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    """A replicas change arriving mid-rollout supersedes the upgrade, and the next upgrade starts from the
    pods as they are (the partition and the pause kept): no pod already on the new revision is rolled
    again, the skew holds throughout, and the new replicas come afterwards, on the new revision."""
    await deployed(kube, namespace)
    handle = entity(temporal_env, cluster_id, namespace)
    async with observing(kube, namespace, NEW) as obs:
        await change(kube, namespace, set_engine_image(NEW))
        await until(lambda: sum(obs.counts().values()) >= 1, "a first pod on the new image")
        await handle.execute_update(RoleBasedGroupWorkflow.pause)
        await wait_rbg(
            kube, namespace, NAME, lambda o: (o.get("status") or {}).get("phase") == "Paused", "Paused"
        )
        held = obs.counts()
        gen = await change(kube, namespace, [{"op": "replace", "path": "/spec/roles/0/replicas", "value": 6}])
        # The pause holds the upgrade that follows the scale's arrival too.
        await asyncio.sleep(4)
        assert obs.counts() == held
        assert sum(held.values()) < 8
        await handle.execute_update(RoleBasedGroupWorkflow.resume)
        await wait_ready(kube, namespace, NAME, generation=gen, timeout=180)
    assert obs.counts() == {"prefill": 6, "decode": 4}
    assert obs.max_skew <= 0.25, (obs.max_skew, obs.worst)
    # Each existing pod replaced exactly once (the partition kept across the two operations); the scale's
    # pods were made on the new revision.
    existing = [f"{NAME}-{role}-{i}" for role in ("prefill", "decode") for i in range(4)]
    assert [obs.replacements(name) for name in existing] == [1] * 8, obs.incarnations
    assert [obs.replacements(f"{NAME}-prefill-{i}") for i in (4, 5)] == [0, 0]
    assert [r["revision"] for r in await group_revisions(kube, namespace)] == [1, 2]
