"""Kubernetes API requests counted from the API server's audit log (JSON lines, Metadata level; see
rbg_flows/sim/controlplane.py AUDIT_POLICY), by client, verb and resource. Pure: lines in, counts out.

A request is logged once per stage: watches and other long-running requests at ResponseStarted and again
at ResponseComplete (when they end, maybe after the run), the rest at ResponseComplete. Each request is
counted once, by its auditID, at the first stage seen.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Agents of the processes of a bench run, by prefix (first match wins). The watcher speaks through kopf
# and, for its login and resync reads, the official Python client (OpenAPI-Generator/<v>/python): in a
# bench run nothing else uses that client.
AGENTS = (
    ("rbg-flows-bench/floor", "floor"),
    ("rbg-flows-bench", "bench"),
    ("kopf/", "watcher"),
    ("OpenAPI-Generator/", "watcher"),
)
# Found without parsing every line: most lines repeat an agent already seen.
_AGENT = re.compile(r'"userAgent":"(?P<agent>(?:[^"\\]|\\.)*)"')
_COMPONENT = re.compile(r"^rbg-flows/\S+ \((?P<component>[^)]+)\)")


def client_of(user_agent: str) -> str:
    """The process a User-Agent names: worker, watcher, sim, floor, bench, or the agent's product name
    (kube-controller-manager, kube-scheduler, kube-apiserver, ...)."""
    for prefix, name in AGENTS:
        if user_agent.startswith(prefix):
            return name
    if m := _COMPONENT.match(user_agent):
        return m["component"]
    return user_agent.split("/", 1)[0] or "unknown"


@dataclass(frozen=True)
class Request:
    audit_id: str
    client: str
    verb: str  # as the API server names it: get, list, watch, create, update, patch, delete, ...
    resource: str  # "statefulsets", "rolebasedgroups/status"; the path for non-resource URLs
    namespace: str  # "" for cluster-wide requests
    received: float  # requestReceivedTimestamp, seconds since the epoch
    code: int | None


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def parse(lines: Iterable[str], classify: Callable[[str], str] = client_of) -> list[Request]:
    """Every request of the log once (the first stage seen of each auditID), in log order."""
    seen: set[str] = set()
    out: list[Request] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line cut short by a log still being written
        audit_id = ev.get("auditID", "")
        if ev.get("stage") == "RequestReceived" or audit_id in seen:
            continue
        seen.add(audit_id)
        ref = ev.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        out.append(
            Request(
                audit_id=audit_id,
                client=classify(ev.get("userAgent", "")),
                verb=ev.get("verb", ""),
                resource=resource or ev.get("requestURI", "").split("?", 1)[0],
                namespace=ref.get("namespace", ""),
                received=_epoch(ev["requestReceivedTimestamp"]),
                code=(ev.get("responseStatus") or {}).get("code"),
            )
        )
    return out


def select(
    requests: Iterable[Request],
    *,
    clients: Iterable[str],
    windows: Iterable[tuple[float, float]],
    namespaces: Callable[[str], bool],
) -> list[Request]:
    """Requests of `clients` received in one of `windows` ([start, end) epoch seconds) whose namespace
    passes `namespaces` ("" for cluster-wide ones)."""
    wanted, spans = set(clients), list(windows)
    return [
        r
        for r in requests
        if r.client in wanted and namespaces(r.namespace) and any(a <= r.received < b for a, b in spans)
    ]


def tally(requests: Iterable[Request], per: int = 1) -> dict[str, Any]:
    """Counts divided by `per` (the number of groups): total, by verb, by client and verb, by verb and
    resource."""
    rs = list(requests)

    def norm(c: Counter[str]) -> dict[str, float]:
        return {k: round(v / per, 2) for k, v in sorted(c.items())}

    return {
        "total": round(len(rs) / per, 2),
        "by_verb": norm(Counter(r.verb for r in rs)),
        "by_client_verb": norm(Counter(f"{r.client} {r.verb}" for r in rs)),
        "by_verb_resource": norm(Counter(f"{r.verb} {r.resource}" for r in rs)),
    }


def agents(lines: Iterable[str], classify: Callable[[str], str] = client_of) -> dict[str, str]:
    """Every User-Agent of the log and the process it is counted as."""
    seen: dict[str, str] = {}
    for line in lines:
        if m := _AGENT.search(line):
            agent = json.loads(f'"{m["agent"]}"')
            if agent not in seen:
                seen[agent] = classify(agent)
    return dict(sorted(seen.items()))
