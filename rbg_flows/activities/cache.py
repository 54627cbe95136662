"""One shared watch per workload kind for every wait in this worker.

A wait per role holding its own watch does not scale: 1,000 groups mean thousands of open watches and as
many pooled connections (starving the applies that share the pool). Instead each worker lists and watches
the workloads rbg_flows manages (by label, all namespaces) once per kind, and waits subscribe to the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from rbg_flows.activities.workloads import WorkloadKind
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.informer import list_and_watch

JSON = dict[str, Any]
NAME_LABEL = "rolebasedgroup.workloads.x-k8s.io/name"
ROLE_LABEL = "rolebasedgroup.workloads.x-k8s.io/role"
PODS = WorkloadKind("v1/Pod", "Pod", "v1", "pods")


def _owner_key(kind: WorkloadKind, obj: JSON) -> str:
    """Workloads are keyed by name; pods by the workload of their role (`<rbg>-<role>`), so a wait on a
    role's pods subscribes like a wait on its workload."""
    meta = obj["metadata"]
    if kind.key != PODS.key:
        return str(meta["name"])
    labels = meta.get("labels") or {}
    return f"{labels.get(NAME_LABEL, '')}-{labels.get(ROLE_LABEL, '')}"


class WorkloadCache:
    def __init__(self, kube: KubeClient):
        self.kube = kube
        self._objects: dict[tuple[str, str, str], JSON] = {}
        self._pods: dict[tuple[str, str], dict[str, JSON]] = {}  # (namespace, workload) -> name -> pod
        self._waiters: dict[tuple[str, str, str], set[asyncio.Event]] = {}
        self._synced: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def ensure(self, kind: WorkloadKind) -> bool:
        """Start the kind's informer on first use and wait for its initial list; False when the cluster
        does not serve the kind (e.g. no LeaderWorkerSet CRD)."""
        if kind.key not in self._tasks:
            prefix = "/api/v1" if kind.group_version == "v1" else f"/apis/{kind.group_version}"
            if await self.kube.get_or_none(prefix) is None:
                return False
            synced = self._synced[kind.key] = asyncio.Event()

            def on_event(event_type: str, obj: JSON) -> None:
                ns = obj["metadata"]["namespace"]
                key = (kind.key, ns, _owner_key(kind, obj))
                if kind.key == PODS.key:
                    pods = self._pods.setdefault((ns, key[2]), {})
                    if event_type == "DELETED":
                        pods.pop(obj["metadata"]["name"], None)
                        if not pods:
                            del self._pods[(ns, key[2])]
                    else:
                        pods[obj["metadata"]["name"]] = obj
                elif event_type == "DELETED":
                    self._objects.pop(key, None)
                else:
                    self._objects[key] = obj
                for waiter in self._waiters.get(key, ()):
                    waiter.set()

            def on_synced() -> None:
                synced.set()
                for (k, _, _), waiters in self._waiters.items():
                    if k == kind.key:
                        for w in waiters:
                            w.set()

            self._tasks[kind.key] = asyncio.create_task(
                list_and_watch(
                    self.kube,
                    f"{prefix}/{kind.plural}",
                    on_event,
                    on_synced=on_synced,
                    params={"labelSelector": NAME_LABEL},
                )
            )
        await self._synced[kind.key].wait()
        return True

    def get(self, kind: WorkloadKind, namespace: str, name: str) -> JSON | None:
        return self._objects.get((kind.key, namespace, name))

    def pods(self, namespace: str, workload: str) -> list[JSON]:
        """The pods of one role (needs `ensure(PODS)`); subscribe with `PODS` and the workload name."""
        return list(self._pods.get((namespace, workload), {}).values())

    @contextlib.contextmanager
    def subscribe(
        self, kind: WorkloadKind, namespace: str, name: str, *also: WorkloadKind
    ) -> Iterator[asyncio.Event]:
        """An event set whenever the object changes, or (`also`, e.g. `PODS`) anything of those kinds
        keyed by the same name (the caller clears it)."""
        keys = [(k.key, namespace, name) for k in (kind, *also)]
        event = asyncio.Event()
        for key in keys:
            self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(event)
                    if not waiters:
                        del self._waiters[key]

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
