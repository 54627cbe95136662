"""What the watcher sends to Temporal: signal-with-start of the entity workflow, drift and deletion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from rbg_flows.workflows.entity import RoleBasedGroupWorkflow, start_attributes
from rbg_flows.workflows.types import (
    ANNOTATION_PREFIX,
    DriftEvent,
    EntityInput,
    RbgKey,
    Timeouts,
    spec_event,
)

__all__ = ["ANNOTATION_PREFIX", "Signaller", "spec_event"]


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
