"""Install the CRDs (generated from the models, so the installed schema is always today's)."""

from __future__ import annotations

import asyncio

from rbg_flows.api.crd import KINDS, crd_manifest
from rbg_flows.kube.client import KubeClient
from rbg_flows.workflows.types import FIELD_MANAGER

CRD_API = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


async def install_crds(kube: KubeClient, timeout: float = 60.0) -> list[str]:
    names = []
    for kind in KINDS:
        crd = crd_manifest(kind)
        name = crd["metadata"]["name"]
        await kube.apply(f"{CRD_API}/{name}", crd, FIELD_MANAGER)
        names.append(name)
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
    return names
