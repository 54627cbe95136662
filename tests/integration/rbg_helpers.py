"""Helpers for driving RoleBasedGroups through the API as a user would."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from rbg_flows.api.keys import GROUP_NAME_LABEL, RBG_API
from rbg_flows.kube.client import KubeClient
from rbg_flows.kube.wait import wait_for
from rbg_flows.messages import RbgKey

ROOT = Path(__file__).resolve().parents[2]


def entity_id(cluster: str, ns: str, name: str) -> str:
    """The entity workflow's id of a group (the `cluster_id` fixture: the session's sim)."""
    return RbgKey(cluster=cluster, namespace=ns, name=name).workflow_id


NAME_LABEL = GROUP_NAME_LABEL  # the name the tests use


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


async def token_for(kube: KubeClient, ns: str, service_account: str, seconds: int = 7200) -> str:
    """A bearer token of an existing ServiceAccount, from the TokenRequest API."""
    review = await kube.create(
        f"/api/v1/namespaces/{ns}/serviceaccounts/{service_account}/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
    )
    token: str = review["status"]["token"]
    return token


def kubeconfig_with_user(admin: Path, user: str, credential: dict[str, Any], out: Path) -> Path:
    """The admin kubeconfig's cluster with one user whose only credential is `credential` (a bearer token,
    an exec plugin): how a process runs as someone else."""
    src = yaml.safe_load(admin.read_text())
    ctx = next(c for c in src["contexts"] if c["name"] == src["current-context"])["context"]
    cluster = next(c for c in src["clusters"] if c["name"] == ctx["cluster"])
    out.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": user, "user": credential}],
                "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
                "current-context": user,
            }
        )
    )
    return out
