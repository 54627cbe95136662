"""Kubernetes API request metrics: the Kubernetes verb of a request, and recording one."""

from __future__ import annotations

from collections.abc import Mapping

from rbg_flows.observability.metrics import KUBE_REQUEST_DURATION, KUBE_REQUESTS

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"


def kube_verb(
    method: str,
    path: str,
    params: Mapping[str, object] | None = None,
    content_type: str | None = None,
) -> str:
    """The API server's verb for a request, as its audit log and RBAC name it (get vs list, watch, apply
    vs patch), from the path's shape: `/api/v1[/namespaces/<ns>]/<resource>[/<name>[/<sub>]]` or the
    same under `/apis/<group>/<version>`."""
    method = method.upper()
    if method == "PATCH":
        return "apply" if content_type == APPLY_CONTENT_TYPE else "patch"
    if method == "POST":
        return "create"
    if method == "PUT":
        return "update"
    if method != "GET" and method != "DELETE":
        return method.lower()
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] else parts
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        rest = rest[2:]  # a namespaced resource (a bare /namespaces/<ns> is the Namespace itself)
    collection = len(rest) <= 1
    if method == "DELETE":
        return "deletecollection" if collection else "delete"
    if params and str(params.get("watch", "")).lower() in ("1", "true"):
        return "watch"
    return "list" if collection else "get"


def record_request(verb: str, code: int | str, seconds: float) -> None:
    KUBE_REQUESTS.labels(verb=verb, code=str(code)).inc()
    KUBE_REQUEST_DURATION.labels(verb=verb).observe(seconds)
