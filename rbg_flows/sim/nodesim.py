"""The node simulator: registers the topology's nodes, keeps them alive with Lease renewals, and plays
the kubelet for pods bound to them. It talks to the cluster only through the public API, so it drives
fake GPU nodes on the sim and on any real cluster alike."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any

import structlog

from rbg_flows.kube.client import STRATEGIC, ApiError, KubeClient
from rbg_flows.kube.informer import list_and_watch
from rbg_flows.sim import annotations as ann
from rbg_flows.sim.podstatus import decide, now_iso
from rbg_flows.sim.topology import SIM_NODE_LABEL, NodeGroup, Topology

log = structlog.get_logger(__name__)
JSON = dict[str, Any]
LEASE_NS = "kube-node-lease"
_POD_NET = ipaddress.ip_network("10.128.0.0/9")
_NODE_NET = ipaddress.ip_network("172.30.0.0/16")


def micro_time() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SimNode:
    name: str
    group: NodeGroup
    ip: str
    uid: str = ""
    down: bool = False
    next_renew: float = 0.0


@dataclass
class SimulatorStats:
    pods_started: int = 0
    pods_ready: int = 0
    pods_finalized: int = 0
    patches: int = 0
    lease_renewals: int = 0
    errors: int = 0


@dataclass
class _PodState:
    obj: JSON
    seen_at: float = field(default_factory=time.time)
    ready_at: float | None = None
    timer: asyncio.TimerHandle | None = None
    queued: bool = False


@dataclass
class NodeSimulatorConfig:
    ready_delay: float = 1.0
    lease_duration: int = 40
    # None: a quarter of the lease, slowed down for very large clusters to spare the API server.
    renew_interval: float | None = None
    workers: int = 96
    kubelet_version: str = "v1.35.4"

    def interval(self, nodes: int) -> float:
        if self.renew_interval is not None:
            return self.renew_interval
        return max(self.lease_duration / 4, min(self.lease_duration / 2, nodes / 50))


class NodeSimulator:
    def __init__(self, client: KubeClient, topology: Topology, config: NodeSimulatorConfig | None = None):
        self.client = client
        self.cfg = config or NodeSimulatorConfig()
        self.nodes: dict[str, SimNode] = {
            name: SimNode(name, group, str(_NODE_NET[i + 10]))
            for i, (name, group) in enumerate(topology.expand())
        }
        self.pods: dict[str, _PodState] = {}
        self.stats = SimulatorStats()
        self.registered = asyncio.Event()
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._ip_counter = 0
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        await self.register_nodes()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._leases(), name="leases"),
            loop.create_task(self._watch_nodes(), name="node-watch"),
            loop.create_task(self._watch_pods(), name="pod-watch"),
        ]
        self._tasks += [
            loop.create_task(self._worker(), name=f"kubelet-{i}") for i in range(self.cfg.workers)
        ]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()

    async def run(self) -> None:
        await self.start()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self.stop()

    # -- nodes -----------------------------------------------------------------------------------
    def _node_object(self, node: SimNode) -> JSON:
        labels = {
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            SIM_NODE_LABEL: "true",
            "type": "kwok",
            **node.group.labels,
        }
        spec: JSON = {}
        if node.group.taints:
            spec["taints"] = [t.model_dump() for t in node.group.taints]
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node.name, "labels": labels, "annotations": {ann.MANAGED: "true"}},
            "spec": spec,
        }

    def _node_status(self, node: SimNode) -> JSON:
        ts = now_iso()
        cap = dict(node.group.capacity)
        conds = [
            {
                "type": t,
                "status": "False",
                "reason": r,
                "message": m,
                "lastHeartbeatTime": ts,
                "lastTransitionTime": ts,
            }
            for t, r, m in (
                ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
            )
        ]
        conds.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "simulated kubelet is posting ready status",
                "lastHeartbeatTime": ts,
                "lastTransitionTime": ts,
            }
        )
        return {
            "status": {
                "capacity": cap,
                "allocatable": cap,
                "conditions": conds,
                "phase": "Running",
                "addresses": [
                    {"type": "InternalIP", "address": node.ip},
                    {"type": "Hostname", "address": node.name},
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "osImage": "rbg-flows sim",
                    "kernelVersion": "sim",
                    "containerRuntimeVersion": "sim://1.0",
                    "kubeletVersion": self.cfg.kubelet_version,
                    "kubeProxyVersion": "",
                    "machineID": node.name,
                    "systemUUID": node.name,
                    "bootID": node.name,
                },
            }
        }

    async def _post_ready(self, node: SimNode) -> None:
        await self.client.patch(f"/api/v1/nodes/{node.name}/status", self._node_status(node), STRATEGIC)

    async def register_nodes(self) -> None:
        sem = asyncio.Semaphore(32)
        interval = self.cfg.interval(len(self.nodes))

        async def one(i: int, node: SimNode) -> None:
            async with sem:
                obj = self._node_object(node)
                try:
                    created = await self.client.create("/api/v1/nodes", obj)
                except ApiError as e:
                    if e.status != 409:
                        raise
                    created = await self.client.patch(
                        f"/api/v1/nodes/{node.name}", {"metadata": obj["metadata"]}
                    )
                node.uid = created["metadata"]["uid"]
                node.down = (created["metadata"].get("annotations") or {}).get(ann.NODE_DOWN) == "true"
                if not node.down:
                    await self._post_ready(node)
                    await self._renew(node)
                # Spread renewals over the interval, as kubelets' independent clocks do.
                node.next_renew = time.monotonic() + interval * (i % 97) / 97

        await asyncio.gather(*(one(i, n) for i, n in enumerate(self.nodes.values())))
        self.registered.set()
        log.info("nodes registered", nodes=len(self.nodes), lease_renew_interval=interval)

    async def _renew(self, node: SimNode) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases/{node.name}"
        spec = {
            "holderIdentity": node.name,
            "leaseDurationSeconds": self.cfg.lease_duration,
            "renewTime": micro_time(),
        }
        try:
            await self.client.patch(path, {"spec": spec})
        except ApiError as e:
            if e.status != 404:
                raise
            await self.client.create(
                f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NS}/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": node.name,
                        "namespace": LEASE_NS,
                        "ownerReferences": [
                            {"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid}
                        ],
                    },
                    "spec": spec,
                },
            )
        self.stats.lease_renewals += 1

    async def _leases(self) -> None:
        interval = self.cfg.interval(len(self.nodes))
        sem = asyncio.Semaphore(16)

        async def renew(node: SimNode) -> None:
            async with sem:
                try:
                    await self._renew(node)
                except (TimeoutError, ApiError, OSError) as e:
                    self.stats.errors += 1
                    node.next_renew = time.monotonic() + 1
                    log.warning("lease renewal failed", node=node.name, error=str(e))

        while True:
            now = time.monotonic()
            due = [n for n in self.nodes.values() if not n.down and n.next_renew <= now]
            for n in due:
                n.next_renew = now + interval
            if due:
                await asyncio.gather(*(renew(n) for n in due))
            await asyncio.sleep(0.5)

    async def _on_node(self, kind: str, obj: JSON) -> None:
        node = self.nodes.get(obj["metadata"]["name"])
        if node is None:
            return
        if kind == "DELETED":
            # A deleted node is gone for good: its kubelet stops, as it would on a real machine.
            del self.nodes[node.name]
            log.info("node deleted", node=node.name)
            return
        down = (obj["metadata"].get("annotations") or {}).get(ann.NODE_DOWN) == "true"
        if down == node.down:
            return
        node.down = down
        log.info("node heartbeat " + ("stopped" if down else "resumed"), node=node.name)
        if not down:
            await self._post_ready(node)
            await self._renew(node)
            node.next_renew = time.monotonic() + self.cfg.interval(len(self.nodes))
            for key, st in list(self.pods.items()):
                if st.obj["spec"].get("nodeName") == node.name:
                    self._enqueue(key)

    async def _watch_nodes(self) -> None:
        await list_and_watch(
            self.client, "/api/v1/nodes", self._on_node, params={"labelSelector": f"{SIM_NODE_LABEL}=true"}
        )

    # -- pods ------------------------------------------------------------------------------------
    def _on_pod(self, kind: str, obj: JSON) -> None:
        meta = obj["metadata"]
        key = f"{meta['namespace']}/{meta['name']}"
        if obj.get("spec", {}).get("nodeName") not in self.nodes:
            return
        if kind == "DELETED":
            st = self.pods.pop(key, None)
            if st and st.timer:
                st.timer.cancel()
            return
        st = self.pods.get(key)
        if st is None or st.obj["metadata"]["uid"] != meta["uid"]:
            if st and st.timer:
                st.timer.cancel()
            st = self.pods[key] = _PodState(obj)
        elif _rv(obj) < _rv(st.obj):
            return  # older than what our own patch already returned
        st.obj = obj
        self._enqueue(key)

    async def _watch_pods(self) -> None:
        await list_and_watch(
            self.client, "/api/v1/pods", self._on_pod, params={"fieldSelector": "spec.nodeName!="}
        )

    def _enqueue(self, key: str) -> None:
        st = self.pods.get(key)
        if st and not st.queued:
            st.queued = True
            self._queue.put_nowait(key)

    def _next_ip(self) -> str:
        self._ip_counter += 1
        return str(_POD_NET[self._ip_counter % (_POD_NET.num_addresses - 2) + 1])

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            st = self.pods.get(key)
            if st is None:
                continue
            st.queued = False
            try:
                await self._step(key, st)
            except ApiError as e:
                if e.status in (404, 409):
                    continue  # gone, or changed under us: the watch brings the new state
                self.stats.errors += 1
                log.warning("pod step failed", pod=key, error=str(e))
                self._later(key, st, 1.0)
            except (TimeoutError, OSError) as e:
                self.stats.errors += 1
                log.warning("pod step failed", pod=key, error=str(e))
                self._later(key, st, 1.0)

    def _later(self, key: str, st: _PodState, delay: float) -> None:
        if st.timer:
            st.timer.cancel()
        st.timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._enqueue, key)

    async def _step(self, key: str, st: _PodState) -> None:
        pod = st.obj
        node = self.nodes.get(pod["spec"]["nodeName"])
        if node is None or node.down:
            return  # a dead kubelet does nothing; the node lifecycle controller takes over
        now = time.time()
        d = decide(
            pod,
            now=now,
            ready_at=st.ready_at,
            ready_delay=self.cfg.ready_delay,
            pod_ip=pod.get("status", {}).get("podIP") or self._next_ip(),
            host_ip=node.ip,
            seen_at=st.seen_at,
        )
        if d.ready_at is not None:
            st.ready_at = d.ready_at
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        if d.finalize:
            await self.client.delete(
                f"/api/v1/namespaces/{ns}/pods/{name}",
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": pod["metadata"]["uid"]}},
            )
            self.stats.pods_finalized += 1
            return
        if d.patch is not None:
            d.patch["metadata"] = {"uid": pod["metadata"]["uid"]}
            updated = await self.client.patch(
                f"/api/v1/namespaces/{ns}/pods/{name}/status", d.patch, STRATEGIC
            )
            self.stats.patches += 1
            if "startTime" in d.patch["status"]:
                self.stats.pods_started += 1
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in d.patch["status"].get("conditions", [])
            ):
                self.stats.pods_ready += 1
            if _rv(updated) >= _rv(st.obj):
                st.obj = updated
        if d.recheck_at is not None:
            self._later(key, st, d.recheck_at - time.time())
        elif d.patch is not None:
            self._enqueue(key)  # the patch may have made another step due (e.g. ready with no delay)


def _rv(obj: JSON) -> int:
    try:
        return int(obj["metadata"].get("resourceVersion", 0))
    except (TypeError, ValueError):
        return 0
