"""Classifying an API request the way the API server does (k8s requestinfo.go) (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

RULE_VERBS = frozenset(
    {"*", "get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
)
# Subresources of a namespace, as opposed to namespaced resources below it (k8s requestinfo.go).
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_TRUE_VALUES = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # what Go's strconv.ParseBool accepts


# ---------------------------------------------------------------------------------------------
# Classifying requests (pure)


@dataclass(frozen=True)
class RequestInfo:
    """What the API server's authorizer would see of a request (a subset of k8s `RequestInfo`)."""

    verb: str
    resource: str
    subresource: str | None
    namespace: str | None
    name: str | None
    group: str = ""
    is_resource_request: bool = True

    @property
    def is_watch(self) -> bool:
        return self.is_resource_request and self.verb == "watch"


def _non_resource(method: str) -> RequestInfo:
    return RequestInfo(method.lower(), "", None, None, None, is_resource_request=False)


def _query_value(query: Mapping[str, str] | str, key: str) -> str | None:
    if isinstance(query, str):
        values = parse_qs(query, keep_blank_values=True).get(key)
        return values[0] if values else None
    return query.get(key)


def _name_from_field_selector(selector: str | None) -> str | None:
    # A list/watch narrowed to one object by name is authorized (and so matched) as if named,
    # as the API server does it.
    for term in (selector or "").split(","):
        for op in ("==", "="):
            key, sep, value = term.partition(op)
            if sep and key.strip() == "metadata.name" and not value.startswith("="):
                return value.strip() or None
    return None


def classify(method: str, path: str, query: Mapping[str, str] | str = "") -> RequestInfo:
    """Map an HTTP request to a Kubernetes verb and resource, following k8s `RequestInfoFactory`.

    `query` is the parsed query (a mapping) or the raw query string. Paths outside `/api/v1/...`
    and `/apis/<group>/<version>/...` (discovery, /healthz, /openapi) are non-resource requests.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts or parts[0] not in ("api", "apis"):
        return _non_resource(method)
    group = ""
    if parts[0] == "api":
        rest = parts[2:]
    else:
        if len(parts) < 3:
            return _non_resource(method)
        group = parts[1]
        rest = parts[3:]
    if not rest:  # /api/v1, /apis/apps/v1: discovery
        return _non_resource(method)

    verb = {
        "POST": "create",
        "GET": "get",
        "HEAD": "get",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(method.upper(), method.lower())
    if rest[0] in ("watch", "proxy") and len(rest) > 1:
        # Deprecated /watch/... and /proxy/... path forms put the verb in the path.
        verb = rest[0]
        rest = rest[1:]

    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None

    if verb == "get" and _query_value(query, "watch") in _TRUE_VALUES:
        verb = "watch"
    elif verb == "get" and name is None:
        verb = "list"
    if verb in ("list", "watch") and name is None:
        name = _name_from_field_selector(_query_value(query, "fieldSelector"))
    if verb == "delete" and name is None:
        verb = "deletecollection"
    return RequestInfo(verb, resource, subresource, namespace, name, group=group)
