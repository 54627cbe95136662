"""Events about a group or a set, posted once per activity execution."""

from __future__ import annotations

import hashlib

from temporalio import activity

from rbg_flows.activities.common import kube_call, now_rfc3339
from rbg_flows.api.common import API_VERSION
from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.messages import EventRecord


async def record_event(kube: KubeClient, ev: EventRecord) -> None:
    info = activity.info()
    # One event per (operation run, activity): a retried activity finds its event already there.
    digest = hashlib.sha1(f"{info.workflow_run_id}/{info.activity_id}".encode()).hexdigest()[:12]
    now = now_rfc3339()
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{ev.key.name}.{digest}", "namespace": ev.key.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": ev.kind,
            "name": ev.key.name,
            "namespace": ev.key.namespace,
            "uid": ev.uid,
        },
        "reason": ev.reason,
        "message": ev.message[:1024],
        "type": ev.type,
        "source": {"component": "rbg-flows"},
        "reportingComponent": "rbg-flows",
        "reportingInstance": info.workflow_id,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }

    async def create() -> None:
        try:
            await kube.create(f"/api/v1/namespaces/{ev.key.namespace}/events", body)
        except ApiError as e:
            if e.status != 409:
                raise

    await kube_call(create)
