"""Install the CRDs (generated from the models, so the installed schema is always today's)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from rbg_flows.api.crd import KINDS, crd_manifest
from rbg_flows.kube.client import FIELD_MANAGER, ApiError, KubeClient

CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def install_crds(
    kube: KubeClient, timeout: float = 60.0, conversion_client_config: Mapping[str, Any] | None = None
) -> list[str]:
    """Apply every CRD and wait until each is Established. `conversion_client_config` replaces the
    conversion webhook's clientConfig (e.g. `{"url": ..., "caBundle": ...}` for a webhook outside the
    cluster, as in the sim); the default is the in-cluster Service of deploy/."""
    names = []
    served: list[tuple[str, str]] = []  # (group/version, plural) discovery must list
    for kind in KINDS:
        crd = crd_manifest(kind, conversion_client_config)
        name = crd["metadata"]["name"]
        await kube.apply(f"{CRD_API}/{name}", crd, FIELD_MANAGER)
        names.append(name)
        spec = crd["spec"]
        served += [
            (f"{spec['group']}/{v['name']}", spec["names"]["plural"]) for v in spec["versions"] if v["served"]
        ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for name in names:
        while True:
            obj = await kube.get(f"{CRD_API}/{name}")
            conds = (obj.get("status") or {}).get("conditions") or []
            if any(c["type"] == "Established" and c["status"] == "True" for c in conds):
                break
            if loop.time() > deadline:
                raise TimeoutError(f"CRD {name} not Established")
            await asyncio.sleep(0.1)
    # Established is not yet discoverable: a client that resolves resources through discovery as it starts
    # (kopf does, once, and then only on CRD changes) could miss a version published a moment later.
    for group_version, plural in served:
        while True:
            listed = await kube.get_or_none(f"/apis/{group_version}")
            if listed and any(r.get("name") == plural for r in listed.get("resources") or []):
                break
            if loop.time() > deadline:
                raise TimeoutError(f"{plural} not discoverable in {group_version}")
            await asyncio.sleep(0.1)
    # Nor is it yet listable: after a CRD changes (re-applied with another conversion config, say) the API
    # server rebuilds its storage, answering 429 "storage is (re)initializing" meanwhile, Established all
    # along. kopf backs off for up to a minute on such an answer while it starts, and watches nothing
    # until it is through: a watcher started then missed a first deploy by 90 s.
    for group_version, plural in served:
        while True:
            try:
                await kube.get(f"/apis/{group_version}/{plural}", limit=1)
                break
            except ApiError as e:
                if e.status not in (404, 429, 503) or loop.time() > deadline:
                    raise
            await asyncio.sleep(0.1)
    return names
