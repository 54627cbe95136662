"""What the watcher sends to Temporal: signal-with-start of the entity workflow, drift and deletion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from rbg_flows.workflows.entity import RoleBasedGroupWorkflow, start_attributes
from rbg_flows.workflows.types import DriftEvent, EntityInput, RbgKey, SpecEvent, Timeouts

# Noise that changes without the spec changing, or duplicates it: kept out of workflow histories.
_DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)
ANNOTATION_PREFIX = "rbg-flows.workloads.x-k8s.io"


def spec_event(body: Mapping[str, Any]) -> SpecEvent:
    """The part of a RoleBasedGroup an operation needs (pure)."""
    meta = body["metadata"]
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in _DROP_ANNOTATIONS and not k.startswith(ANNOTATION_PREFIX)
    }
    obj = {
        "apiVersion": body.get("apiVersion", "workloads.x-k8s.io/v1alpha1"),
        "kind": body.get("kind", "RoleBasedGroup"),
        "metadata": {
            k: v
            for k, v in {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "generation": meta.get("generation", 1),
                "labels": dict(meta.get("labels") or {}),
                "annotations": annotations,
            }.items()
            if v not in ({}, None)
        },
        "spec": body.get("spec") or {},
    }
    return SpecEvent(uid=meta["uid"], generation=int(meta.get("generation", 1)), obj=obj)


class Signaller:
    def __init__(self, client: Client, task_queue: str, timeouts: Timeouts | None = None):
        self.client = client
        self.task_queue = task_queue
        self.timeouts = timeouts or Timeouts()

    async def spec(self, body: Mapping[str, Any]) -> None:
        event = spec_event(body)
        key = RbgKey(namespace=body["metadata"]["namespace"], name=body["metadata"]["name"])
        await self.client.start_workflow(
            RoleBasedGroupWorkflow.run,
            EntityInput(key=key, timeouts=self.timeouts),
            id=key.workflow_id,
            task_queue=self.task_queue,
            start_signal="spec_changed",
            start_signal_args=[event],
            search_attributes=start_attributes(key.namespace, key.name, event.uid),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"RoleBasedGroup {key.namespace}/{key.name}",
        )

    async def _signal_if_running(self, key: RbgKey, signal: str, arg: Any) -> None:
        try:
            await self.client.get_workflow_handle(key.workflow_id).signal(signal, arg)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise

    async def drift(self, namespace: str, group: str, owner_uid: str, workload: str, generation: int) -> None:
        await self._signal_if_running(
            RbgKey(namespace=namespace, name=group),
            "drifted",
            DriftEvent(uid=owner_uid, workload=workload, generation=generation),
        )

    async def deleted(self, namespace: str, name: str, uid: str) -> None:
        await self._signal_if_running(RbgKey(namespace=namespace, name=name), "deleted", uid)
