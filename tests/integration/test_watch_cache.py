"""The shared watch cache against the real API server: a re-list replaces what it held, one informer per
kind however many first waits race, credentials re-read on 401, and waits that say when their watch fails.

The cache under test talks through the sim's fault proxy (`sim.kubeconfig`), which cuts watches and fails
requests on demand; the test itself creates and deletes objects directly (`kube`), past the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from rbg_flows.activities.common import resolve
from rbg_flows.activities.rollout import RolloutActivities
from rbg_flows.activities.status import StatusActivities
from rbg_flows.activities.wait import WaitActivities
from rbg_flows.api import STATEFULSET
from rbg_flows.api.keys import GROUP_NAME_LABEL, ROLE_LABEL
from rbg_flows.kube.cache import WatchFailing, WorkloadCache
from rbg_flows.kube.client import JSON_PATCH, ApiError, KubeClient
from rbg_flows.kube.kinds import GROUPS, KINDS, PODS, WorkloadKind
from rbg_flows.messages import (
    ConditionUpdate,
    RbgKey,
    RolePlan,
    RoleRollState,
    SpecRef,
    StatusUpdate,
    StepWait,
    WaitRequest,
)
from rbg_flows.sim.faultproxy import FaultProxyControl, FaultRule

from .conftest import SimCluster
from .rbg_helpers import create_rbg, example

pytestmark = [pytest.mark.sim]

STS = KINDS[STATEFULSET]
STS_PATH = "/apis/apps/v1/statefulsets"
PODS_PATH = "/api/v1/pods"
DEADLINE = 60.0  # generous: only a broken cache ever gets near it


class CountingKube(KubeClient):
    """The real client, counting the requests it sends per path, and able to hold watches back (to
    open a gap in which the test changes the cluster)."""

    def __init__(self, *args: Any, **kw: Any):
        super().__init__(*args, **kw)
        self.gets: Counter[str] = Counter()
        self.watches: Counter[str] = Counter()
        self.watch_errors: list[int] = []
        self.watches_open = asyncio.Event()
        self._sent = asyncio.Event()

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        if method == "GET":
            self.gets[path] += 1
            self._pulse()
        return await super().request(method, path, **kw)

    async def watch(
        self,
        path: str,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
        **params: str | int,
    ) -> AsyncIterator[dict[str, Any]]:
        self.watches[path] += 1
        self._pulse()
        await self.watches_open.wait()
        try:
            async for event in super().watch(
                path, resource_version=resource_version, timeout_seconds=timeout_seconds, **params
            ):
                yield event
        except ApiError as e:
            self.watch_errors.append(e.status)
            raise

    def _pulse(self) -> None:
        self._sent.set()
        self._sent = asyncio.Event()

    async def until(self, ok: Callable[[], bool], what: str) -> None:
        """Wait for requests to have been sent until `ok()` holds."""
        try:
            async with asyncio.timeout(DEADLINE):
                while not ok():
                    sent = self._sent
                    await sent.wait()
        except TimeoutError:
            raise AssertionError(
                f"no {what} within {DEADLINE} s: gets {self.gets}, watches {self.watches}"
            ) from None


async def proxy_watching(control: FaultProxyControl, count: int) -> None:
    """Wait until the proxy relays `count` watches (it cuts only those already connected upstream)."""
    async with asyncio.timeout(DEADLINE):
        # The proxy runs in the sim's process: its counters are all there is to wait on.
        while (await control.stats())["active_watches"] < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.fixture
async def proxied(sim: SimCluster) -> AsyncIterator[CountingKube]:
    client = await CountingKube.from_kubeconfig(sim.kubeconfig)
    client.watches_open.set()
    yield client
    await client.close()


@contextlib.asynccontextmanager
async def cache_of(client: KubeClient) -> AsyncIterator[WorkloadCache]:
    cache = WorkloadCache(client)
    try:
        yield cache
    finally:
        await cache.close()


def labels(role: str = "r", group: str = "g") -> dict[str, str]:
    return {GROUP_NAME_LABEL: group, ROLE_LABEL: role}


def statefulset(name: str) -> dict[str, Any]:
    # No replicas: nothing to schedule, the object alone is what the cache holds.
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": labels()},
        "spec": {
            "replicas": 0,
            "serviceName": name,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "example.invalid/c"}]},
            },
        },
    }


def unschedulable_pod(name: str) -> dict[str, Any]:
    # Never scheduled, so deleting it needs no kubelet: it is gone at once.
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels()},
        "spec": {
            "nodeSelector": {"rbg.x-k8s.io/test-pool": "no-such-pool"},
            "containers": [{"name": "c", "image": "example.invalid/c"}],
        },
    }


async def wait_until(cache: WorkloadCache, changed: asyncio.Event, ok: Callable[[], bool]) -> None:
    """A subscriber: sleeps on its subscription until the cache shows `ok()`."""
    async with asyncio.timeout(DEADLINE):
        while not ok():
            changed.clear()
            await changed.wait()


@contextlib.contextmanager
def subscribed(cache: WorkloadCache, kind: WorkloadKind, ns: str, name: str) -> Iterator[asyncio.Event]:
    with cache.subscribe(kind, ns, name) as event:
        yield event


@pytest.mark.fault_proxy
async def test_a_relist_after_410_drops_what_was_deleted_during_the_gap(
    kube: KubeClient, proxied: CountingKube, fault_proxy: str, namespace: str
) -> None:
    control = FaultProxyControl(fault_proxy)
    sts = STS.collection(namespace)
    pods = f"/api/v1/namespaces/{namespace}/pods"
    for name in ("gone", "kept"):
        await kube.create(sts, statefulset(name))
    for name in ("g-r-0", "g-r-1"):
        await kube.create(pods, unschedulable_pod(name))

    async with cache_of(proxied) as cache:
        assert await cache.ensure(STS) and await cache.ensure(PODS)
        assert cache.get(STS, namespace, "gone") is not None
        assert {p["metadata"]["name"] for p in cache.pods(namespace, "g-r")} == {"g-r-0", "g-r-1"}
        with (
            subscribed(cache, STS, namespace, "gone") as sts_changed,
            subscribed(cache, PODS, namespace, "g-r") as pods_changed,
        ):
            sts_gone = asyncio.create_task(
                wait_until(cache, sts_changed, lambda: cache.get(STS, namespace, "gone") is None)
            )
            pod_gone = asyncio.create_task(
                wait_until(cache, pods_changed, lambda: len(cache.pods(namespace, "g-r")) == 1)
            )
            await proxy_watching(control, 2)
            # The gap: the API server drops both watches, they are not resumed until the objects are
            # deleted, and by then their resourceVersion has left the server's window (410 Gone).
            proxied.watches_open.clear()
            await control.set_rules(
                [
                    FaultRule(verb="watch", resource=r, fraction=1.0, action="gone", count=1)
                    for r in ("statefulsets", "pods")
                ]
            )
            assert await control.cut_watches() >= 2
            await proxied.until(
                lambda: proxied.watches[STS_PATH] == proxied.watches[PODS_PATH] == 2, "re-watch"
            )
            await kube.delete(f"{sts}/gone")
            await kube.delete(f"{pods}/g-r-1", gracePeriodSeconds=0)
            assert await kube.get_or_none(f"{sts}/gone") is None
            assert await kube.get_or_none(f"{pods}/g-r-1") is None
            assert not sts_gone.done() and not pod_gone.done()  # no event could have told of it
            proxied.watches_open.set()
            try:
                await asyncio.gather(sts_gone, pod_gone)
            finally:
                await control.clear()

        assert proxied.watch_errors == [410, 410]
        assert proxied.gets[STS_PATH] == proxied.gets[PODS_PATH] == 2  # answered by a re-list
        assert cache.get(STS, namespace, "gone") is None
        assert cache.get(STS, namespace, "kept") is not None
        assert [p["metadata"]["name"] for p in cache.pods(namespace, "g-r")] == ["g-r-0"]
        assert cache.failure(STS, PODS) is None  # a 410 is routine, not a failing watch


@pytest.mark.fault_proxy
async def test_a_cut_watch_that_cannot_resume_relists_once_the_api_server_answers(
    kube: KubeClient, proxied: CountingKube, fault_proxy: str, namespace: str
) -> None:
    control = FaultProxyControl(fault_proxy)
    sts = STS.collection(namespace)
    await kube.create(sts, statefulset("gone"))
    async with cache_of(proxied) as cache:
        assert await cache.ensure(STS)
        assert cache.get(STS, namespace, "gone") is not None
        await proxy_watching(control, 1)
        with subscribed(cache, STS, namespace, "gone") as changed:
            try:
                # Every list and watch of StatefulSets refused: the cut watch can neither resume nor re-list.
                await control.set_rules([FaultRule(resource="statefulsets", fraction=1.0, action="error")])
                assert await control.cut_watches() >= 1
                await wait_until(cache, changed, lambda: cache.failure(STS) is not None)
                failure = cache.failure(STS)
                assert failure is not None and failure.kind == "StatefulSet" and "500" in failure.error
                await kube.delete(f"{sts}/gone")
                assert cache.get(STS, namespace, "gone") is not None  # stale, and known to be
            finally:
                await control.clear()
            await wait_until(cache, changed, lambda: cache.get(STS, namespace, "gone") is None)
        assert cache.failure(STS) is None


async def test_concurrent_first_waits_start_one_list_and_one_watch(
    proxied: CountingKube, namespace: str
) -> None:
    async with cache_of(proxied) as cache:
        results = await asyncio.gather(*(cache.ensure(k) for _ in range(20) for k in (STS, PODS)))
        assert all(results)
        await proxied.until(
            lambda: proxied.watches[STS_PATH] >= 1 and proxied.watches[PODS_PATH] >= 1, "watch"
        )
        assert (proxied.gets["/apis/apps/v1"], proxied.gets[STS_PATH], proxied.watches[STS_PATH]) == (1, 1, 1)
        assert (proxied.gets["/api/v1"], proxied.gets[PODS_PATH], proxied.watches[PODS_PATH]) == (1, 1, 1)
        assert await cache.ensure(STS)  # later waits reuse it too
        assert proxied.gets[STS_PATH] == 1

        # A kind the cluster does not serve: one probe answers every concurrent caller; not remembered,
        # so a CRD installed later is found.
        widgets = WorkloadKind("example.com/v1/Widget", "Widget", "example.com/v1", "widgets")
        assert not any(await asyncio.gather(*(cache.ensure(widgets) for _ in range(20))))
        assert proxied.gets["/apis/example.com/v1"] == 1
        assert not await cache.ensure(widgets)
        assert proxied.gets["/apis/example.com/v1"] == 2


def informers() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("informer ") and not t.done()]


async def test_close_is_idempotent_and_ends_every_informer(proxied: CountingKube) -> None:
    cache = WorkloadCache(proxied)
    assert await cache.ensure(STS) and await cache.ensure(PODS)
    assert len(informers()) == 2
    await cache.close()
    await cache.close()
    assert informers() == []
    with pytest.raises(RuntimeError, match="closed"):
        await cache.ensure(STS)


def wait_request(namespace: str, bound: float) -> WaitRequest:
    # A workload that does not exist: readiness stays at 0 == known_ready, so only the watch ends it.
    return WaitRequest(
        key=RbgKey(namespace=namespace, name="g"),
        uid="uid",
        plan=RolePlan(role="r", kind=STATEFULSET, workload="g-r", replicas=1),
        min_generation=1,
        known_ready=0,
        heartbeat_every_seconds=0.2,
        watch_failure_seconds=bound,
    )


def wait_step(namespace: str, bound: float) -> StepWait:
    # A StatefulSet that does not exist: the step never starts, so only the watch ends the wait.
    return StepWait(
        key=RbgKey(namespace=namespace, name="g"),
        uid="uid",
        state=RoleRollState(
            role="r", workload="g-r", replicas=1, partition=0, floor=0, generation=1, total=1
        ),
        want=1,
        known_ready=0,
        heartbeat_every_seconds=0.2,
        watch_failure_seconds=bound,
    )


@pytest.mark.fault_proxy
@pytest.mark.parametrize("activity", ["wait_role", "wait_step"])
async def test_a_wait_whose_watch_fails_says_so_and_fails_its_attempt(
    proxied: CountingKube, fault_proxy: str, namespace: str, activity: str
) -> None:
    control = FaultProxyControl(fault_proxy)
    beats: list[dict[str, Any]] = []
    healthy = asyncio.Event()

    def on_heartbeat(*details: Any) -> None:
        beats.append(details[0])
        if "ready" in details[0] and "watch_error" not in details[0]:
            healthy.set()

    env = ActivityEnvironment()
    env.on_heartbeat = on_heartbeat
    async with cache_of(proxied) as cache:
        run: Awaitable[Any]
        if activity == "wait_role":
            run = env.run(WaitActivities(proxied, cache).wait, wait_request(namespace, bound=2.0))
        else:
            run = env.run(RolloutActivities(proxied, cache).wait_step, wait_step(namespace, bound=2.0))
        waiting = asyncio.ensure_future(run)
        try:
            async with asyncio.timeout(DEADLINE):
                await healthy.wait()
            # The API server cut away from the worker: every list and watch of the kinds it waits on fails.
            await proxy_watching(control, 2)
            await control.set_rules(
                [
                    FaultRule(resource="statefulsets", fraction=1.0, action="error"),
                    FaultRule(resource="pods", fraction=1.0, action="error"),
                ]
            )
            assert await control.cut_watches() >= 1
            with pytest.raises(ApplicationError) as failed:
                async with asyncio.timeout(DEADLINE):
                    await waiting
        finally:
            await control.clear()
            waiting.cancel()
    err = failed.value
    assert err.type == "WatchFailing" and not err.non_retryable
    assert "has been failing for" in err.message and "500" in err.message
    assert err.message.startswith(("the watch of StatefulSet", "the watch of Pod"))
    told = [b for b in beats if "watch_error" in b]
    assert told and "500" in told[-1]["watch_error"] and told[-1]["since_s"] >= 0
    assert told[-1]["ready"] == 0  # still reports what it knows, with the reason it may be stale


async def test_a_first_wait_on_an_unreachable_api_server_gives_up_with_the_reason(
    proxied: CountingKube, namespace: str
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens there once the socket closes
    cfg = copy.copy(proxied.cfg)
    cfg.host = f"https://127.0.0.1:{dead}"
    async with KubeClient(cfg) as unreachable, cache_of(unreachable) as cache:
        with pytest.raises(WatchFailing) as failing:
            await cache.ensure(STS, give_up_after=0.5)
        assert "the watch of StatefulSet has been failing for" in str(failing.value)
        assert "connect" in str(failing.value).lower()

        beats: list[dict[str, Any]] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *d: beats.append(d[0])
        with pytest.raises(ApplicationError) as failed:
            async with asyncio.timeout(DEADLINE):
                await env.run(WaitActivities(unreachable, cache).wait, wait_request(namespace, bound=1.0))
        assert failed.value.type == "WatchFailing" and "connect" in failed.value.message.lower()


EXEC_PLUGIN = """\
import json, pathlib, sys
token = pathlib.Path(sys.argv[1]).read_text().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


async def test_a_401_re_reads_the_credentials_and_retries_once(
    sim: SimCluster, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    await kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "rotated"}},
    )
    # Lets it watch ConfigMaps in its namespace, so the watch below needs nothing but a good token.
    await kube.create(
        f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "rotated-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "rotated", "namespace": namespace}],
        },
    )
    issued = await kube.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/rotated/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600},
        },
    )
    direct = yaml.safe_load(sim.direct_kubeconfig.read_text())
    token_file, plugin = tmp_path / "token", tmp_path / "plugin.py"
    token_file.write_text("not-a-token")
    plugin.write_text(EXEC_PLUGIN)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "sim", "cluster": direct["clusters"][0]["cluster"]}],
                "users": [
                    {
                        "name": "rotated",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1",
                                "command": sys.executable,
                                "args": [str(plugin), str(token_file)],
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
                "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "rotated"}}],
                "current-context": "sim",
            }
        )
    )
    async with await KubeClient.from_kubeconfig(kubeconfig) as client:
        # Refused, re-read (the plugin still says the same), refused again: once, not in a loop.
        with pytest.raises(ApiError) as refused:
            await client.get("/api")
        assert refused.value.status == 401 and client.credentials_generation == 1

        token_file.write_text(issued["status"]["token"])  # the token rotated under the running client
        assert (await client.get("/api"))["kind"] == "APIVersions"
        assert client.credentials_generation == 2
        # Watches re-authenticate the same way (the token held in memory revoked, the plugin's good).
        client.cfg.api_key["BearerToken"] = "Bearer revoked"
        async for event in client.watch(f"/api/v1/namespaces/{namespace}/configmaps", timeout_seconds=1):
            assert event["type"] in ("ADDED", "BOOKMARK")
        assert client.credentials_generation == 3


async def new_group(kube: KubeClient, namespace: str) -> tuple[RbgKey, str]:
    """A group, its key and uid, that nothing but the test acts on."""
    created = await create_rbg(kube, namespace, example("pd-disaggregation.yaml"))
    return RbgKey(namespace=namespace, name=created["metadata"]["name"]), created["metadata"]["uid"]


async def test_a_step_reads_its_group_from_the_watch_cache_and_the_server_only_when_it_must(
    kube: KubeClient, proxied: CountingKube, crds: list[str], iso_namespace: str
) -> None:
    namespace = iso_namespace
    key, uid = await new_group(kube, namespace)
    # Read where the orchestrator reads groups: the stored version (no conversion webhook on its path).
    name, path = key.name, GROUPS.path(namespace, key.name)
    async with cache_of(proxied) as cache:
        rbg = await resolve(proxied, SpecRef(key=key, uid=uid, generation=1), cache)
        assert rbg.metadata.uid == uid and proxied.gets[path] == 0
        # A newer generation than the cache holds yet: the step waits for the watch, not the server.
        patched = await kube.patch(
            path, [{"op": "replace", "path": "/spec/roles/1/replicas", "value": 3}], content_type=JSON_PATCH
        )
        newer = SpecRef(key=key, uid=uid, generation=patched["metadata"]["generation"])
        rbg = await resolve(proxied, newer, cache)
        assert rbg.spec.roles[1].replicas == 3 and proxied.gets[path] == 0
        # Gone from the cache: only the server can say it was deleted.
        await kube.delete(path)
        with cache.subscribe(GROUPS, namespace, name) as changed:
            async with asyncio.timeout(DEADLINE):
                while cache.get(GROUPS, namespace, name) is not None:
                    await changed.wait()
                    changed.clear()
        with pytest.raises(ApplicationError) as gone:
            await resolve(proxied, newer, cache)
        assert gone.value.type == "Deleted" and proxied.gets[path] == 1


async def test_a_status_report_over_a_stale_cache_is_refused_and_read_again_from_the_server(
    kube: KubeClient, proxied: CountingKube, crds: list[str], iso_namespace: str
) -> None:
    namespace = iso_namespace
    key, uid = await new_group(kube, namespace)
    # Read where the orchestrator reads groups: the stored version (no conversion webhook on its path).
    name, path = key.name, GROUPS.path(namespace, key.name)
    env = ActivityEnvironment()

    def update(ctype: str) -> StatusUpdate:
        return StatusUpdate(
            key=key, uid=uid, conditions=[ConditionUpdate(type=ctype, status="True", reason="Test")]
        )

    async with cache_of(proxied) as cache:
        status = StatusActivities(proxied, cache)
        await env.run(status.report, update("First"))
        assert proxied.gets[path] == 0  # read from the cache, which was current
        # The copy a lagging cache would still hold, once the status has moved on without it.
        stale = copy.deepcopy(cache.get(GROUPS, namespace, name))
        assert stale is not None
        await env.run(StatusActivities(kube, WorkloadCache(kube)).report, update("Second"))

        async def lagging(upd: StatusUpdate) -> dict[str, Any]:
            return copy.deepcopy(stale)

        status._cached = lagging  # type: ignore[method-assign]
        # Computed over the stale copy, the write is refused (409) and done again over the server's.
        await env.run(status.report, update("Third"))
        assert proxied.gets[path] == 1
    conditions = {c["type"] for c in (await kube.get(path))["status"]["conditions"]}
    assert {"First", "Second", "Third"} <= conditions
