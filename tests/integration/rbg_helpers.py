"""Helpers for driving RoleBasedGroups through the API as a user would."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
RBG_API = "/apis/workloads.x-k8s.io/v1alpha1"
NAME_LABEL = "rolebasedgroup.workloads.x-k8s.io/name"


def example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "examples" / name).read_text())
    return doc


def rbgs(ns: str) -> str:
    return f"{RBG_API}/namespaces/{ns}/rolebasedgroups"


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return dict(c)
    return None


def is_true(obj: dict[str, Any] | None, ctype: str) -> bool:
    c = condition(obj, ctype)
    return bool(c and c["status"] == "True")


async def create_rbg(kube: KubeClient, ns: str, body: dict[str, Any]) -> dict[str, Any]:
    body = copy.deepcopy(body)
    body["metadata"]["namespace"] = ns
    return await kube.create(rbgs(ns), body)


async def wait_rbg(
    kube: KubeClient, ns: str, name: str, predicate: Any, what: str, timeout: float = 90
) -> dict[str, Any]:
    objs = await wait_for(
        kube, rbgs(ns), lambda o: name in o and predicate(o[name]), name=name, timeout=timeout, what=what
    )
    return objs[name]


async def wait_ready(
    kube: KubeClient, ns: str, name: str, generation: int | None = None, timeout: float = 90
) -> dict[str, Any]:
    def ok(o: dict[str, Any]) -> bool:
        gen = generation or o["metadata"]["generation"]
        return is_true(o, "Ready") and (o.get("status") or {}).get("observedGeneration") == gen

    return await wait_rbg(kube, ns, name, ok, f"{name} Ready", timeout)


async def wait_event(
    kube: KubeClient,
    ns: str,
    name: str,
    reason: str,
    *,
    warning: bool = False,
    contains: str = "",
    timeout: float = 30,
) -> dict[str, Any]:
    """The first Event on the group with this reason (events are posted after the status they report)."""

    def match(e: dict[str, Any]) -> bool:
        return (
            e["involvedObject"].get("name") == name
            and e["reason"] == reason
            and contains in e["message"]
            and (not warning or e["type"] == "Warning")
        )

    objs = await wait_for(
        kube,
        f"/api/v1/namespaces/{ns}/events",
        lambda o: any(map(match, o.values())),
        timeout=timeout,
        what=f"event {reason} on {name}",
    )
    return next(e for e in objs.values() if match(e))
