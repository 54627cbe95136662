"""What the watcher sends to Temporal: signal-with-start of the entity workflow, drift and deletion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from rbg_flows.api.conversion import internal_form
from rbg_flows.messages import (
    ANNOTATION_PREFIX,
    ENTITY_WORKFLOW,
    SET_WORKFLOW,
    AdapterChanged,
    DriftEvent,
    EntityInput,
    PodFailure,
    ProfileChange,
    RbgKey,
    SetInput,
    SetSignal,
    spec_event,
    start_attributes,
)

__all__ = ["ANNOTATION_PREFIX", "Signaller", "spec_event"]


class Signaller:
    def __init__(self, client: Client, task_queue: str, cluster: str = ""):
        self.client = client
        self.task_queue = task_queue
        self.cluster = cluster  # this installation's id: part of every entity's id

    def key(self, namespace: str, name: str) -> RbgKey:
        return RbgKey(cluster=self.cluster, namespace=namespace, name=name)

    async def spec(self, body: Mapping[str, Any]) -> None:
        """Signal the group's spec (read in the stored version, v1alpha2; sent in the internal form)."""
        event = spec_event(internal_form(body))
        key = self.key(body["metadata"]["namespace"], body["metadata"]["name"])
        await self._start(
            ENTITY_WORKFLOW,
            EntityInput(key=key),
            key.workflow_id,
            event,
            start_attributes(key.namespace, key.name, event.uid, key.cluster),
            f"RoleBasedGroup {key.namespace}/{key.name}",
        )

    async def _start(
        self, workflow: str, inp: Any, workflow_id: str, signal: Any, attributes: Any, summary: str
    ) -> None:
        """Signal `spec_changed`, starting the workflow if it is not running."""
        await self.client.start_workflow(
            workflow,
            inp,
            id=workflow_id,
            task_queue=self.task_queue,
            start_signal="spec_changed",
            start_signal_args=[signal],
            search_attributes=attributes,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=summary,
        )

    async def set_spec(self, namespace: str, name: str, uid: str, generation: int) -> None:
        """Signal a RoleBasedGroupSet's new generation, starting its workflow if it is not running (its
        activities read the set itself: the signal carries no spec)."""
        key = self.key(namespace, name)
        await self._start(
            SET_WORKFLOW,
            SetInput(key=key),
            key.set_workflow_id,
            SetSignal(uid=uid, generation=generation),
            start_attributes(namespace, name, uid, key.cluster, phase=None),
            f"RoleBasedGroupSet {namespace}/{name}",
        )

    async def set_child_changed(self, namespace: str, set_name: str, set_uid: str) -> None:
        """One of the set's RoleBasedGroups changed its readiness, or was deleted."""
        await self._signal_if_running(
            self.key(namespace, set_name).set_workflow_id, "child_changed", SetSignal(uid=set_uid)
        )

    async def set_deleted(self, namespace: str, name: str, uid: str) -> None:
        await self._signal_if_running(self.key(namespace, name).set_workflow_id, "deleted", uid)

    async def _signal_if_running(self, workflow_id: str, signal: str, arg: Any) -> None:
        try:
            await self.client.get_workflow_handle(workflow_id).signal(signal, arg)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise

    async def drift(self, namespace: str, group: str, owner_uid: str, workload: str, generation: int) -> None:
        await self._signal_if_running(
            self.key(namespace, group).workflow_id,
            "drifted",
            DriftEvent(uid=owner_uid, workload=workload, generation=generation),
        )

    async def profile(self, namespace: str, group: str, change: ProfileChange) -> None:
        """A profile the group uses changed (the entity decides whether that rolls anything)."""
        await self._signal_if_running(self.key(namespace, group).workflow_id, "profile_changed", change)

    async def adapter(self, namespace: str, group: str, change: AdapterChanged) -> None:
        """A scaling adapter of the group changed (the entity syncs the group's adapters)."""
        await self._signal_if_running(self.key(namespace, group).workflow_id, "adapter_changed", change)

    async def pod_failed(self, namespace: str, group: str, failure: PodFailure) -> None:
        """A pod of the group failed (the entity decides what its role's restart policy does)."""
        await self._signal_if_running(self.key(namespace, group).workflow_id, "pod_failed", failure)

    async def deleted(self, namespace: str, name: str, uid: str) -> None:
        await self.deleted_by_id(self.key(namespace, name).workflow_id, uid)

    async def deleted_by_id(self, workflow_id: str, uid: str) -> None:
        """The entity ends if `uid` is the one it manages (a re-created group of the name is not it)."""
        await self._signal_if_running(workflow_id, "deleted", uid)
