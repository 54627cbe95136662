"""RoleBasedGroupScalingAdapters: one per role with `scalingAdapter.enable`, created holding the role's
replicas, deleted when the role drops it; a Bound adapter's replicas are the role's (written into the
group's spec, so the Scale that follows is the ordinary one); its status mirrors the role for an HPA."""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import delete_exactly, kube_call, now_rfc3339
from rbg_flows.api import RoleBasedGroup, parse_rbg
from rbg_flows.api.conversion import internal_form
from rbg_flows.api.keys import GROUP_NAME_LABEL
from rbg_flows.kube.client import JSON_PATCH, MERGE, ApiError, KubeClient
from rbg_flows.kube.kinds import GROUPS, WorkloadKind
from rbg_flows.manifests.adapters import (
    SYNCED_ANNOTATION,
    adapter_name,
    adapter_replicas,
    adapter_selector,
    scaled_since_synced,
    scaling_adapter,
)
from rbg_flows.manifests.labels import owned_by
from rbg_flows.messages import AdapterSync, AdapterSyncResult, EventRecord, spec_event

JSON = dict[str, Any]
ADAPTERS = WorkloadKind(
    "workloads.x-k8s.io/RoleBasedGroupScalingAdapter",
    "RoleBasedGroupScalingAdapter",
    "workloads.x-k8s.io/v1alpha1",
    "rolebasedgroupscalingadapters",
    selector=None,
)


class AdapterActivities:
    def __init__(self, kube: KubeClient):
        self.kube = kube

    @activity.defn(name="sync_adapters")
    async def sync_adapters(self, req: AdapterSync) -> AdapterSyncResult:
        ns, name = req.key.namespace, req.key.name
        obj = await kube_call(lambda: self.kube.get_or_none(GROUPS.path(ns, name)))
        if obj is None or obj["metadata"]["uid"] != req.uid:
            return AdapterSyncResult()  # gone or replaced: the entity hears of it from the watcher
        rbg, problems = parse_rbg(internal_form(obj))
        if rbg is None or problems:
            return AdapterSyncResult(event=spec_event(internal_form(obj)))  # Deploy refuses it by field
        listed = await kube_call(
            lambda: self.kube.get(ADAPTERS.collection(ns), labelSelector=f"{GROUP_NAME_LABEL}={name}")
        )
        ours = {a["metadata"]["name"]: a for a in listed["items"] if owned_by(a, req.uid)}
        enabled = [role for role in rbg.spec.roles if role.scaling_adapter_enabled]
        wanted = {adapter_name(rbg, role): role for role in enabled}
        for gone in sorted(set(ours) - set(wanted)):
            await self._delete(ns, ours.pop(gone))
        events: list[EventRecord] = []
        replicas: dict[int, int] = {}  # role index -> the Bound adapter's replicas, where they differ
        rescaled: set[str] = set()
        for i, role in enumerate(rbg.spec.roles):
            adapter_of = adapter_name(rbg, role)
            if adapter_of not in wanted:
                continue
            adapter = ours.get(adapter_of)
            if adapter is None:
                ours[adapter_of] = await self._create(ns, scaling_adapter(rbg, role))
                continue
            want = adapter_replicas(adapter, role)
            bound = ((adapter.get("status") or {}).get("phase")) == "Bound"
            if bound and want != role.replicas:
                replicas[i] = want
                rescaled.add(adapter_of)
                if scaled_since_synced(adapter):
                    message = (
                        f"role {role.name}: replicas {role.replicas}→{want} from its adapter {adapter_of}"
                    )
                    events.append(
                        EventRecord(key=req.key, uid=req.uid, reason="ScaledByAdapter", message=message)
                    )
                else:
                    message = (
                        f"role {role.name}: the spec says {role.replicas} replicas but its Bound adapter "
                        f"{adapter_of} holds {want}; the adapter wins (scale through the adapter, or "
                        "disable scalingAdapter)"
                    )
                    events.append(
                        EventRecord(
                            key=req.key,
                            uid=req.uid,
                            type="Warning",
                            reason="ScalingAdapterOverride",
                            message=message,
                        )
                    )
        if replicas:
            obj = await self._set_replicas(obj, replicas)
            rbg, _ = parse_rbg(internal_form(obj))
            assert rbg is not None
        for adapter_of, role in wanted.items():
            await self._mirror(ns, rbg, role.name, ours[adapter_of], scaled=adapter_of in rescaled)
        return AdapterSyncResult(
            event=spec_event(internal_form(obj)),
            rewritten=bool(replicas),
            uses_adapters=bool(enabled),
            events=events,
        )

    async def _create(self, ns: str, body: JSON) -> JSON:
        async def create() -> JSON:
            try:
                created: JSON = await self.kube.create(ADAPTERS.collection(ns), body)
                return created
            except ApiError as e:
                if e.status != 409:
                    raise
                existing: JSON = await self.kube.get(ADAPTERS.path(ns, body["metadata"]["name"]))
                return existing

        return await kube_call(create)

    async def _delete(self, ns: str, adapter: JSON) -> None:
        meta = adapter["metadata"]
        # Only the adapter we listed: one re-created meanwhile under the name is not ours to remove.
        await delete_exactly(self.kube, ADAPTERS.path(ns, meta["name"]), meta["uid"])

    async def _set_replicas(self, obj: JSON, replicas: dict[int, int]) -> JSON:
        """The roles' replicas replaced, on condition nobody changed the spec since it was read (a test of
        the generation: status writes move the resourceVersion all the time)."""
        meta = obj["metadata"]
        patch = [{"op": "test", "path": "/metadata/generation", "value": meta["generation"]}]
        patch += [
            {"op": "replace", "path": f"/spec/roles/{i}/replicas", "value": n} for i, n in replicas.items()
        ]
        path = GROUPS.path(meta["namespace"], meta["name"])

        async def set_replicas() -> JSON:
            try:
                result: JSON = await self.kube.patch(path, patch, content_type=JSON_PATCH)
                return result
            except ApiError as e:
                # A failed test (a bare 422): retrying the same patch cannot cure it; the newer
                # generation's event makes the entity sync again.
                if e.status == 422:
                    raise ApplicationError(
                        "the spec changed while its replicas were set from the adapters", non_retryable=True
                    ) from e
                raise

        return await kube_call(set_replicas)

    async def _mirror(self, ns: str, rbg: RoleBasedGroup, role: str, adapter: JSON, *, scaled: bool) -> None:
        """Bound, the role's replicas and readiness, the pod selector; the generation the role took."""
        spec_role = rbg.spec.role(role)
        status = {
            r.name: r for r in ((rbg.status.role_statuses if rbg.status is not None else None) or [])
        }.get(role)
        meta = adapter["metadata"]
        body: JSON = {
            "status": {
                "phase": "Bound"
                if adapter_replicas(adapter, spec_role) == spec_role.replicas
                else "NotBound",
                "replicas": spec_role.replicas,
                "readyReplicas": status.ready_replicas if status is not None else 0,
                "selector": adapter_selector(rbg, role),
            }
        }
        current = adapter.get("status") or {}
        if scaled or not current.get("lastScaleTime"):
            body["status"]["lastScaleTime"] = now_rfc3339()
        path = ADAPTERS.path(ns, meta["name"])
        # Synced after every operation of the group: write only what changed.
        if any(current.get(k) != v for k, v in body["status"].items()):
            await kube_call(lambda: self.kube.patch(f"{path}/status", body, content_type=MERGE))
        synced = str(meta.get("generation") or 1)
        if (meta.get("annotations") or {}).get(SYNCED_ANNOTATION) != synced:
            annotate = {"metadata": {"annotations": {SYNCED_ANNOTATION: synced}}}
            await kube_call(lambda: self.kube.patch(path, annotate, content_type=MERGE))
