"""The spine: kubectl apply a RoleBasedGroup → durable deploy workflow → ready roles, checked through the
Kubernetes API exactly as a user would see them."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest
import yaml

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import is_ready, wait_for

from .conftest import SimCluster
from .rbg_helpers import (
    NAME_LABEL,
    condition,
    create_rbg,
    entity_id,
    example,
    is_true,
    rbgs,
    wait_event,
    wait_ready,
)

pytestmark = pytest.mark.sim
ALL_CONDITIONS = {
    "Ready",
    "Progressing",
    "RollingUpdateInProgress",
    "RestartInProgress",
    "Paused",
    "InvalidSpec",
}


async def test_pd_example_creates_what_the_reference_controller_would(
    sim: SimCluster, kube: KubeClient, orchestrator: Any, namespace: str, cluster_id: str
) -> None:
    manifest = sim.kubectl_run("apply", "-n", namespace, "-f", "examples/pd-disaggregation.yaml")
    assert "created" in manifest.stdout
    rbg = await wait_ready(kube, namespace, "pd-demo", generation=1)
    uid = rbg["metadata"]["uid"]

    # Names, kinds, owner references and labels.
    group_key = hashlib.sha1(f"{namespace}/pd-demo".encode()).hexdigest()
    sts = {
        r: await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/pd-demo-{r}")
        for r in ("prefill", "decode")
    }
    router = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/pd-demo-router")
    for role, obj in [*sts.items(), ("router", router)]:
        labels = obj["metadata"]["labels"]
        assert labels[NAME_LABEL] == "pd-demo"
        assert labels["rolebasedgroup.workloads.x-k8s.io/role"] == role
        assert labels["rolebasedgroup.workloads.x-k8s.io/group-unique-key"] == group_key
        assert f"rolebasedgroup.workloads.x-k8s.io/role-revision-hash-{role}" in labels
        owner = obj["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
            "RoleBasedGroup",
            "pd-demo",
            uid,
            True,
        )
        tmpl_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert (
            tmpl_labels[NAME_LABEL] == "pd-demo"
            and tmpl_labels["rolebasedgroup.workloads.x-k8s.io/role"] == role
        )
    for role, obj in sts.items():
        assert obj["spec"]["podManagementPolicy"] == "Parallel"
        assert obj["spec"]["serviceName"] == f"s-pd-demo-{role}"
        svc = await kube.get(f"/api/v1/namespaces/{namespace}/services/s-pd-demo-{role}")
        assert svc["spec"]["clusterIP"] == "None" and svc["spec"]["publishNotReadyAddresses"] is True
        assert svc["spec"]["selector"][NAME_LABEL] == "pd-demo"
        assert svc["spec"]["selector"]["rolebasedgroup.workloads.x-k8s.io/role"] == role
    assert await kube.get_or_none(f"/api/v1/namespaces/{namespace}/services/s-pd-demo-router") is None

    # The discovery file.
    cm = await kube.get(f"/api/v1/namespaces/{namespace}/configmaps/pd-demo")
    config = yaml.safe_load(cm["data"]["config.yaml"])
    assert config["group"]["name"] == "pd-demo" and config["group"]["size"] == 3
    assert config["roles"]["prefill"]["size"] == 2
    assert config["roles"]["prefill"]["instances"][1]["address"] == "pd-demo-prefill-1.s-pd-demo-prefill"
    assert config["roles"]["prefill"]["instances"][0]["ports"] == {"http_api": 8000}
    # What resolves those names: the Service's endpoints name each pod by its hostname under it (the
    # records a cluster DNS serves as <pod>.s-<rbg>-<role>), the addresses the reference's examples use.
    for role in ("prefill", "decode"):
        slices = await kube.get(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            labelSelector=f"kubernetes.io/service-name=s-pd-demo-{role}",
        )
        hostnames = {e.get("hostname") for sl in slices["items"] for e in sl.get("endpoints") or []}
        addresses = {i["address"].split(".")[0] for i in config["roles"][role]["instances"]}
        assert hostnames == addresses == {f"pd-demo-{role}-0", f"pd-demo-{role}-1"}
    # The router is started, as in the reference's example, with engine URLs that name those records.
    router = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/pd-demo-router")
    urls = [a for a in router["spec"]["template"]["spec"]["containers"][0]["command"] if "://" in a]
    services = {
        s["metadata"]["name"]: s
        for s in (await kube.get(f"/api/v1/namespaces/{namespace}/services"))["items"]
    }
    assert len(urls) == 2
    for url in urls:
        pod, service = url.split("://")[1].split(":")[0].split(".")
        assert service in services and pod in {
            i["address"].split(".")[0] for r in config["roles"].values() for i in r["instances"]
        }

    # Env (first, in order) and the mount, on the real pods.
    pods = (await kube.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"{NAME_LABEL}=pd-demo"))[
        "items"
    ]
    assert len(pods) == 5 and all(is_ready(p) for p in pods)
    for pod in pods:
        role = pod["metadata"]["labels"]["rolebasedgroup.workloads.x-k8s.io/role"]
        container = pod["spec"]["containers"][0]
        names = [e["name"] for e in container["env"]]
        expected = (
            ["GROUP_NAME", "ROLE_NAME", "ROLE_INDEX", "RBG_GROUP_NAME", "RBG_ROLE_NAME", "RBG_ROLE_INDEX"]
            if role != "router"
            else ["GROUP_NAME", "ROLE_NAME", "RBG_GROUP_NAME", "RBG_ROLE_NAME"]
        )
        assert [n for n in names if n in expected] == expected
        assert names[: len(expected)] == expected
        env = {e["name"]: e for e in container["env"]}
        assert env["GROUP_NAME"]["value"] == "pd-demo" and env["ROLE_NAME"]["value"] == role
        assert not any("REPLICA" in n or "SIZE" in n for n in names)
        if role != "router":
            assert "fieldRef" in env["ROLE_INDEX"]["valueFrom"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/etc/rbg"]["readOnly"] is True

    # Status: roleStatuses, every declared condition, observedGeneration, workflowId.
    st = rbg["status"]
    assert st["observedGeneration"] == 1 and st["phase"] == "Ready"
    assert st["workflowId"] == entity_id(cluster_id, namespace, "pd-demo")
    assert {c["type"] for c in st["conditions"]} == ALL_CONDITIONS
    assert condition(rbg, "Ready")["reason"] == "AllRolesReady"  # type: ignore[index]
    assert {r["name"]: (r["replicas"], r["readyReplicas"]) for r in st["roleStatuses"]} == {
        "prefill": (2, 2),
        "decode": (2, 2),
        "router": (1, 1),
    }
    await wait_event(kube, namespace, "pd-demo", "DeployStarted")
    await wait_event(kube, namespace, "pd-demo", "DeploySucceeded")

    # kubectl shows it as a user expects.
    out = sim.kubectl_run("get", "rbg", "-n", namespace, "pd-demo").stdout
    assert "True" in out and "Ready" in out


async def test_dependents_are_created_only_after_their_dependencies_are_ready(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    seen: list[tuple[str, bool]] = []

    async def watch_creations() -> None:
        from rbg_flows.kube.informer import list_and_watch

        created: set[str] = set()

        async def on_event(kind: str, obj: dict[str, Any]) -> None:
            name = obj["metadata"]["name"]
            if kind == "ADDED" and name not in created:
                created.add(name)
                deps = {"chain-engine": "chain-cache", "chain-gateway": "chain-engine"}.get(name)
                if deps:
                    dep = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{deps}")
                    st = dep.get("status") or {}
                    seen.append((name, st.get("readyReplicas", 0) == dep["spec"]["replicas"]))
                else:
                    seen.append((name, True))

        await asyncio.gather(
            list_and_watch(kube, f"/apis/apps/v1/namespaces/{namespace}/statefulsets", on_event),
            list_and_watch(kube, f"/apis/apps/v1/namespaces/{namespace}/deployments", on_event),
        )

    watcher = asyncio.create_task(watch_creations())
    try:
        await create_rbg(kube, namespace, example("dependency-chain.yaml"))
        await wait_ready(kube, namespace, "chain")
    finally:
        watcher.cancel()
    assert [n for n, _ in seen] == ["chain-cache", "chain-engine", "chain-gateway"]
    assert all(ok for _, ok in seen), seen
    engine = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/chain-engine")
    container = engine["spec"]["template"]["spec"]["containers"][0]
    # templateRef + templatePatch: the base image with the patch's resources, the base env kept.
    assert container["image"] == "registry.example/inference:1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert {"name": "LOG_LEVEL", "value": "info"} in container["env"]


@pytest.mark.lws
async def test_leaderworkerset_example(kube: KubeClient, orchestrator: Any, namespace: str) -> None:
    await create_rbg(kube, namespace, example("pd-disaggregation-lws.yaml"))
    rbg = await wait_ready(kube, namespace, "pd-lws", timeout=120)
    lws = await kube.get(
        f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{namespace}/leaderworkersets/pd-lws-prefill"
    )
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    pods = (
        await kube.get(
            f"/api/v1/namespaces/{namespace}/pods",
            labelSelector="leaderworkerset.sigs.k8s.io/name=pd-lws-prefill",
        )
    )["items"]
    assert len(pods) == 2 and all(is_ready(p) for p in pods)
    leader = next(
        p for p in pods if p["metadata"]["labels"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    )
    assert (
        "--role" in leader["spec"]["containers"][0]["args"]
        and "leader" in leader["spec"]["containers"][0]["args"]
    )
    env = {e["name"] for e in leader["spec"]["containers"][0]["env"]}
    assert {"GROUP_NAME", "ROLE_NAME", "ROLE_INDEX", "LWS_LEADER_ADDRESS"} <= env
    assert rbg["status"]["phase"] == "Ready"


async def test_a_user_variable_of_the_same_name_is_replaced(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    body = {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "envy"},
        "spec": {
            "roles": [
                {
                    "name": "worker",
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "main",
                                    "image": "engine:1",
                                    "env": [
                                        {"name": "MINE", "value": "1"},
                                        {"name": "ROLE_NAME", "value": "user-value"},
                                    ],
                                }
                            ]
                        }
                    },
                }
            ]
        },
    }
    await create_rbg(kube, namespace, body)
    await wait_ready(kube, namespace, "envy")
    sts = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/envy-worker")
    env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
    role_name = [e for e in env if e["name"] == "ROLE_NAME"]
    assert role_name == [{"name": "ROLE_NAME", "value": "worker"}]
    assert {"name": "MINE", "value": "1"} in env


async def test_manual_edit_of_a_managed_statefulset_is_reverted(
    sim: SimCluster, kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await create_rbg(kube, namespace, example("dependency-chain.yaml"))
    await wait_ready(kube, namespace, "chain")
    path = f"/apis/apps/v1/namespaces/{namespace}/statefulsets/chain-cache"
    sim.kubectl_run(
        "-n", namespace, "set", "image", "statefulset/chain-cache", "main=registry.example/hacked:6"
    )
    objs = await wait_for(
        kube,
        path.rsplit("/", 1)[0],
        lambda o: (
            "chain-cache" in o
            and o["chain-cache"]["spec"]["template"]["spec"]["containers"][0]["image"]
            == "registry.example/kv-cache:1.0"
            and o["chain-cache"]["metadata"]["generation"] >= 3
        ),
        name="chain-cache",
        timeout=60,
        what="drift repaired",
    )
    assert (
        objs["chain-cache"]["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example/kv-cache:1.0"
    )
    await wait_event(kube, namespace, "chain", "RepairSucceeded")


async def test_deleting_the_group_removes_every_object_and_pod(
    sim: SimCluster, kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await create_rbg(kube, namespace, example("pd-disaggregation.yaml"))
    await wait_ready(kube, namespace, "pd-demo")
    sim.kubectl_run("delete", "-n", namespace, "rbg/pd-demo", "--wait=true", "--timeout=60s")
    selector = f"{NAME_LABEL}=pd-demo"
    for path in (
        f"/api/v1/namespaces/{namespace}/pods",
        f"/apis/apps/v1/namespaces/{namespace}/statefulsets",
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        f"/api/v1/namespaces/{namespace}/services",
    ):
        await wait_for(kube, path, lambda o: not o, label_selector=selector, timeout=60, what=f"{path} empty")
    await wait_for(
        kube,
        f"/api/v1/namespaces/{namespace}/configmaps",
        lambda o: "pd-demo" not in o,
        timeout=60,
        what="discovery ConfigMap gone",
    )


async def test_a_newer_spec_mid_deploy_retargets_to_it(
    kube: KubeClient, orchestrator: Any, temporal_env: Any, namespace: str, cluster_id: str
) -> None:
    created = await create_rbg(kube, namespace, example("dependency-chain.yaml"))
    # Change the engine before it exists (the cache is still becoming Ready).
    body = {
        "spec": {
            "roles": [r if r["name"] != "engine" else {**r, "replicas": 3} for r in created["spec"]["roles"]]
        }
    }
    await kube.patch(f"{rbgs(namespace)}/chain", body)
    rbg = await wait_ready(kube, namespace, "chain", generation=2)
    engine = await kube.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets/chain-engine")
    assert engine["spec"]["replicas"] == 3
    assert rbg["status"]["observedGeneration"] == 2
    from rbg_flows.workflows.entity import RoleBasedGroupWorkflow

    handle = temporal_env.client.get_workflow_handle(entity_id(cluster_id, namespace, "chain"))
    # The status is written by the operation just before it returns to the entity workflow.
    for _ in range(100):
        state = await handle.query(RoleBasedGroupWorkflow.get_state)
        if state.settled_generation == 2:
            break
        await asyncio.sleep(0.05)
    assert state.settled_generation == 2
    # Generation 1's deploy was cut short (or finished first); either way the group ends on generation 2.
    assert [op.generation for op in state.recent][-1] == 2
    assert all(op.outcome in ("ready", "superseded") for op in state.recent), state.recent


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda s: s["roles"][1].update(dependencies=["nope"]), "spec.roles[1].dependencies[0]"),
        (lambda s: s["roles"][0].update(dependencies=["gateway"]), "spec.roles"),
        (lambda s: s["roles"][0].update(templateRef={"name": "missing"}), "spec.roles[0].templateRef"),
        (
            lambda s: s["roles"][2].update(template={"spec": {"containers": [{"name": "x", "image": "y"}]}}),
            "spec.roles[2]",
        ),
        (
            lambda s: s["roles"][1].update(
                rolloutStrategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}
            ),
            "spec.roles[1].rolloutStrategy",
        ),
        (
            lambda s: s["roles"][1].update(rolloutStrategy={"rollingUpdate": {"partition": 2}}),
            "spec.roles[1].rolloutStrategy.rollingUpdate.partition",
        ),
        (
            lambda s: s.update(
                coordination=[
                    {
                        "name": "c",
                        "roles": ["engine", "ghost"],
                        "strategy": {"rollingUpdate": {"maxSkew": "50%"}},
                    }
                ]
            ),
            "spec.coordination[0]",
        ),
        (
            lambda s: s.update(
                placement={"policy": "Required", "level": "nvlink", "pairs": [["engine", "ghost"]]}
            ),
            "spec.placement.pairs[0]",
        ),
        (lambda s: s["roles"][0].update(name="a" * 60), "spec.roles[0].name"),
        (lambda s: s["roles"][0].update(name="r" * 45), "spec.roles[0].name"),
        (lambda s: s["roles"][2].pop("templateRef"), "spec.roles[2].template"),
        (
            lambda s: s["roles"][0].update(workload={"apiVersion": "apps/v1", "kind": "DaemonSet"}),
            "spec.roles[0].workload",
        ),
    ],
)
async def test_invalid_spec_is_refused_with_the_field_path(
    kube: KubeClient, orchestrator: Any, namespace: str, mutate: Any, path: str
) -> None:
    body = example("dependency-chain.yaml")
    mutate(body["spec"])
    await create_rbg(kube, namespace, body)
    from .rbg_helpers import wait_rbg

    rbg = await wait_rbg(kube, namespace, "chain", lambda o: is_true(o, "InvalidSpec"), "InvalidSpec=True")
    message = condition(rbg, "InvalidSpec")["message"]  # type: ignore[index]
    assert path in message, message
    assert rbg["status"]["observedGeneration"] == 1
    await wait_event(kube, namespace, "chain", "InvalidSpec", warning=True, contains=path)
    for kind in ("statefulsets", "deployments"):
        assert (await kube.get(f"/apis/apps/v1/namespaces/{namespace}/{kind}"))["items"] == []


async def test_fixing_an_invalid_spec_clears_invalidspec_and_deploys(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    body = example("dependency-chain.yaml")
    body["spec"]["roles"][1]["dependencies"] = ["nope"]
    await create_rbg(kube, namespace, body)
    from .rbg_helpers import wait_rbg

    await wait_rbg(kube, namespace, "chain", lambda o: is_true(o, "InvalidSpec"), "InvalidSpec=True")
    await kube.patch(
        f"{rbgs(namespace)}/chain", {"spec": {"roles": example("dependency-chain.yaml")["spec"]["roles"]}}
    )
    rbg = await wait_ready(kube, namespace, "chain", generation=2)
    assert condition(rbg, "InvalidSpec")["status"] == "False"  # type: ignore[index]


async def test_one_controller_revision_per_distinct_spec(
    kube: KubeClient, orchestrator: Any, namespace: str
) -> None:
    await create_rbg(kube, namespace, example("dependency-chain.yaml"))
    rbg = await wait_ready(kube, namespace, "chain")
    revs = f"/apis/apps/v1/namespaces/{namespace}/controllerrevisions"

    async def revisions() -> list[dict[str, Any]]:
        items = (await kube.get(revs, labelSelector=f"{NAME_LABEL}=chain"))["items"]
        # StatefulSets keep ControllerRevisions of their own, carrying the pod labels: only the group's count.
        ours = [r for r in items if r["metadata"]["ownerReferences"][0]["kind"] == "RoleBasedGroup"]
        return sorted(ours, key=lambda r: r["revision"])

    first = await revisions()
    assert [r["revision"] for r in first] == [1]
    name = first[0]["metadata"]["name"]
    assert (
        name
        == "chain-"
        + first[0]["metadata"]["labels"]["rolebasedgroup.workloads.x-k8s.io/controller-revision-hash"]
    )
    assert rbg["status"]["currentRevision"] == rbg["status"]["updateRevision"] == name

    path = f"{rbgs(namespace)}/chain"
    roles = rbg["spec"]["roles"]
    scaled = await kube.patch(
        path, {"spec": {"roles": [{**r, "replicas": 2} if r["name"] == "gateway" else r for r in roles]}}
    )
    await wait_ready(kube, namespace, "chain", generation=scaled["metadata"]["generation"])
    assert [r["metadata"]["name"] for r in await revisions()] == [name]  # replicas-only: no new revision

    changed = await kube.patch(
        path,
        {
            "spec": {
                "roles": [
                    {
                        **r,
                        "templatePatch": {
                            "spec": {
                                "containers": [{"name": "main", "image": "registry.example/kv-cache:2.0"}]
                            }
                        },
                    }
                    if r["name"] == "cache"
                    else r
                    for r in scaled["spec"]["roles"]
                ]
            }
        },
    )
    rbg = await wait_ready(kube, namespace, "chain", generation=changed["metadata"]["generation"])
    after = await revisions()
    assert [r["revision"] for r in after] == [1, 2]
    assert rbg["status"]["currentRevision"] == rbg["status"]["updateRevision"] == after[1]["metadata"]["name"]
