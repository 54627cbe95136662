"""kopf handlers. Each only translates an event into a signal; all logic lives in the workflows."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from rbg_flows.watcher.signaller import ANNOTATION_PREFIX, Signaller

RBG = ("workloads.x-k8s.io", "v1alpha1", "rolebasedgroups")
NAME_LABEL = "rolebasedgroup.workloads.x-k8s.io/name"
WORKLOADS = (
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "deployments"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
)


def configure(settings: kopf.OperatorSettings) -> None:
    # kopf's own bookkeeping goes to annotations under our prefix, never to .status (the orchestrator's).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


def build_registry(signaller: Signaller) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # Workload generations already signalled, so status churn during a rollout sends nothing.
    seen: dict[str, int] = {}

    @kopf.on.login(registry=registry)
    def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own has none of kopf's default login handlers: in-cluster first, then kubeconfig.
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    async def spec(body: kopf.Body, **_: Any) -> None:
        try:
            await signaller.spec(body)
        except Exception as e:  # Temporal unreachable: kopf retries the handler with its backoff
            raise kopf.TemporaryError(f"could not signal the workflow: {e}", delay=5) from e

    for decorator in (
        kopf.on.resume(*RBG, registry=registry),
        kopf.on.create(*RBG, registry=registry),
        kopf.on.update(*RBG, field="spec", registry=registry),
    ):
        decorator(spec)

    @kopf.on.event(*RBG, registry=registry)
    async def _deleted(type: str, body: kopf.Body, **_: Any) -> None:
        if type == "DELETED":
            meta = body["metadata"]
            await signaller.deleted(meta["namespace"], meta["name"], meta["uid"])

    async def workload_event(type: str, body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        if type == "DELETED":
            seen.pop(meta["uid"], None)
        owner = next(
            (
                o
                for o in meta.get("ownerReferences") or []
                if o.get("kind") == "RoleBasedGroup" and o.get("controller")
            ),
            None,
        )
        generation = int(meta.get("generation") or 0)
        if owner is None or (type != "DELETED" and seen.get(meta["uid"], 0) >= generation):
            return
        seen[meta["uid"]] = generation
        # A deleted workload is drift too: the repair re-creates it.
        await signaller.drift(
            meta["namespace"],
            owner["name"],
            owner["uid"],
            meta["name"],
            generation if type != "DELETED" else 1 << 62,
        )

    for group, version, plural in WORKLOADS:
        kopf.on.event(group, version, plural, labels={NAME_LABEL: kopf.PRESENT}, registry=registry)(
            workload_event
        )
    return registry
