"""Moving a StatefulSet role from v0.4's headless Service name (`<rbg>-<role>`) to the reference's since
v0.5 (`s-<rbg>-<role>`, manifests/service.py) without replacing a pod.

A StatefulSet's `serviceName` cannot be changed, so the StatefulSet is deleted with its pods orphaned and
applied again under the new name: the StatefulSet controller adopts the same pods and ControllerRevisions
(the template is unchanged, so no pod is rolled). A pod's DNS name comes from the `subdomain` it was
created with, which cannot change either: pods made before the move stay reachable only through the old
Service, so it is kept until the last of them is gone (recreated by a rollout or a restart), and deleted
by the first apply or wait that finds none. The new Service is always applied before any of this.
"""

from __future__ import annotations

import asyncio
from functools import partial

from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import JSON, beat, kube_call
from rbg_flows.activities.wait import watched
from rbg_flows.api import STATEFULSET, RoleBasedGroup, RoleSpec, service_name, workload_name
from rbg_flows.api.keys import GROUP_NAME_LABEL, ROLE_LABEL
from rbg_flows.kube.cache import DEFAULT_GIVE_UP_SECONDS, WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, KubeClient
from rbg_flows.kube.kinds import KINDS, PODS, SERVICE
from rbg_flows.manifests.labels import owned_by
from rbg_flows.manifests.service import build_headless_service

STS = KINDS[STATEFULSET]
# The garbage collector removes the orphan finalizer within a second or two on a healthy cluster.
ORPHAN_DELETE_SECONDS = 120.0


async def apply_headless_service(
    kube: KubeClient, cache: WorkloadCache | None, rbg: RoleBasedGroup, role: RoleSpec
) -> None:
    """The role's headless Service, then its StatefulSet moved onto it if it was made under v0.4's name
    (the caller applies the StatefulSet next, which recreates it there)."""
    svc = build_headless_service(rbg, role)
    ns = rbg.metadata.namespace or ""
    await kube_call(lambda: kube.apply(SERVICE.path(ns, svc["metadata"]["name"]), svc, FIELD_MANAGER))
    await move_statefulset_service(kube, cache, rbg, role)


def needs_move(current: JSON | None, rbg: RoleBasedGroup, role: RoleSpec) -> bool:
    """Whether this StatefulSet of the role was made under another Service name (pure)."""
    wanted = service_name(rbg.metadata.name or "", role.name)
    return current is not None and (current.get("spec") or {}).get("serviceName") != wanted


async def move_statefulset_service(
    kube: KubeClient, cache: WorkloadCache | None, rbg: RoleBasedGroup, role: RoleSpec
) -> bool:
    """Before the role's StatefulSet is applied: if it exists under another `serviceName`, delete it with
    its pods orphaned so the apply that follows recreates it under the current name. True if it did.
    Idempotent: a retry after the delete finds no StatefulSet and lets the apply create it."""
    ns, group = rbg.metadata.namespace or "", rbg.metadata.name or ""
    name, wanted = workload_name(group, role.name), service_name(group, role.name)
    current: JSON | None = None
    if cache is not None and await watched(cache, STS, DEFAULT_GIVE_UP_SECONDS, 3.0):
        current = cache.get(STS, ns, name)
    if current is not None and not needs_move(current, rbg, role):
        return False  # the usual case, answered from the cache without a request
    current = await kube_call(partial(kube.get_or_none, STS.path(ns, name)))
    if not needs_move(current, rbg, role):
        return False
    assert current is not None
    if not owned_by(current, rbg.metadata.uid or ""):
        raise ApplicationError(
            f"StatefulSet {name} exists and is not owned by this RoleBasedGroup", non_retryable=True
        )
    uid = current["metadata"]["uid"]
    body = {"propagationPolicy": "Orphan", "preconditions": {"uid": uid}}
    await kube_call(partial(kube.delete, STS.path(ns, name), body))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ORPHAN_DELETE_SECONDS
    while True:
        left = await kube_call(partial(kube.get_or_none, STS.path(ns, name)))
        if left is None or left["metadata"]["uid"] != uid:
            return True
        if loop.time() > deadline:
            # Retryable: the garbage collector may be behind; the next attempt waits again.
            raise ApplicationError(
                f"StatefulSet {name} was deleted (pods orphaned) to move it to Service {wanted}, and is "
                f"still there after {ORPHAN_DELETE_SECONDS:.0f}s: is the garbage collector running?"
            )
        beat({"waiting_for": f"StatefulSet {name} to be released by the garbage collector"})
        await asyncio.sleep(0.2)


async def retire_legacy_service(
    kube: KubeClient, cache: WorkloadCache | None, namespace: str, group: str, uid: str, role: str
) -> bool:
    """Delete a StatefulSet role's v0.4-named Service once no pod of the role was created under it (the
    caller knows the role is a StatefulSet one). True if it did. Costs no request while there is no such
    Service: the worker's watch cache of Services says so."""
    legacy = workload_name(group, role)
    path = SERVICE.path(namespace, legacy)
    if cache is not None and await watched(cache, SERVICE, DEFAULT_GIVE_UP_SECONDS, 3.0):
        svc = cache.get(SERVICE, namespace, legacy)
    else:
        svc = await kube_call(partial(kube.get_or_none, path))
    if svc is None or not owned_by(svc, uid):
        return False
    if cache is not None and await watched(cache, PODS, DEFAULT_GIVE_UP_SECONDS, 3.0):
        pods = cache.pods(namespace, legacy)
    else:
        selector = f"{GROUP_NAME_LABEL}={group},{ROLE_LABEL}={role}"
        pods = (await kube_call(partial(kube.get, PODS.collection(namespace), labelSelector=selector)))[
            "items"
        ]
    if any((p.get("spec") or {}).get("subdomain") == legacy for p in pods):
        return False
    body = {"preconditions": {"uid": svc["metadata"]["uid"]}, "propagationPolicy": "Background"}
    await kube_call(partial(kube.delete, path, body))
    return True
