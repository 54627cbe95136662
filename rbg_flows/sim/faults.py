"""Faults for tests and chaos runs. Pod and node faults go through the node simulator (as annotations
it acts on); API faults through the sim's loopback fault proxy."""

from __future__ import annotations

import uuid

from rbg_flows.kube.client import KubeClient
from rbg_flows.sim import annotations as ann


class Faults:
    def __init__(self, client: KubeClient):
        self.client = client

    async def _annotate_pod(self, namespace: str, name: str, key: str, value: str | None) -> None:
        await self.client.patch(
            f"/api/v1/namespaces/{namespace}/pods/{name}", {"metadata": {"annotations": {key: value}}}
        )

    async def crash_pod(self, namespace: str, name: str) -> str:
        """One container crash: restartCount + 1, unready until the container "restarts"."""
        token = uuid.uuid4().hex[:12]
        await self._annotate_pod(namespace, name, ann.CRASH, token)
        return token

    async def fail_pod(self, namespace: str, name: str) -> None:
        await self._annotate_pod(namespace, name, ann.FAIL, "true")

    async def hold_pod(self, namespace: str, name: str) -> None:
        await self._annotate_pod(namespace, name, ann.HOLD, "true")

    async def release_pod(self, namespace: str, name: str) -> None:
        await self._annotate_pod(namespace, name, ann.HOLD, None)

    async def node_not_ready(self, name: str) -> None:
        """Stop the node's heartbeats; the real node lifecycle controller marks it and evicts its pods."""
        await self.client.patch(
            f"/api/v1/nodes/{name}", {"metadata": {"annotations": {ann.NODE_DOWN: "true"}}}
        )

    async def node_ready(self, name: str) -> None:
        await self.client.patch(f"/api/v1/nodes/{name}", {"metadata": {"annotations": {ann.NODE_DOWN: None}}})

    async def delete_node(self, name: str) -> None:
        await self.client.delete(f"/api/v1/nodes/{name}")
