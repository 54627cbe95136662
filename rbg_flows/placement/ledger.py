"""What other groups hold or have been granted: the ledger that keeps two decisions from counting on
the same free GPUs.

A decision is committed to the ledger (one object, written with optimistic concurrency) before any of
the group's pods exist; until they do, the snapshot of pods cannot show them. So every decision takes
the snapshot and then subtracts, for each other group in the ledger, the GPUs it was granted but whose
pods are not there yet, packed best-fit into the domain it was granted. Exclusive grants also mark
their domain's nodes as taken, so no other group is placed there; any grant makes its domain's nodes
occupied for an exclusive group, which must not share them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from rbg_flows.placement.topology import Cluster


@dataclass(frozen=True)
class Grant:
    """One component of a group, placed: the domain (tier, key, value) and the GPUs of its pods."""

    component: str
    domain: tuple[int, str, str]
    pods: tuple[int, ...]


@dataclass(frozen=True)
class Entry:
    group: str  # the group's unique key (the label its pods carry)
    uid: str
    exclusive: bool
    grants: tuple[Grant, ...]

    def dumps(self) -> str:
        return json.dumps(
            {
                "uid": self.uid,
                "exclusive": self.exclusive,
                "grants": [
                    {"component": g.component, "domain": list(g.domain), "pods": list(g.pods)}
                    for g in self.grants
                ],
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, group: str, text: str) -> Entry | None:
        """None for an entry that does not parse (edited by hand): it is dropped, not crashed on."""
        try:
            raw: Any = json.loads(text)
            grants = tuple(
                Grant(
                    str(g["component"]),
                    (int(g["domain"][0]), str(g["domain"][1]), str(g["domain"][2])),
                    tuple(int(p) for p in g["pods"]),
                )
                for g in raw["grants"]
            )
            return cls(group, str(raw["uid"]), bool(raw["exclusive"]), grants)
        except (ValueError, KeyError, TypeError, IndexError):
            return None


def parse_ledger(data: Mapping[str, str]) -> dict[str, Entry]:
    out = {}
    for group, text in data.items():
        entry = Entry.loads(group, text)
        if entry is not None:
            out[group] = entry
    return out


def reserve(
    cluster: Cluster, entries: Mapping[str, Entry], materialized: Mapping[str, list[int]], me: str
) -> Cluster:
    """`cluster` less what other groups were granted and do not hold yet; exclusive domains taken.

    `materialized` is, per group, the GPUs of its pods already counted in the snapshot."""
    free = [n.free for n in cluster.nodes]
    tenants = [set(n.tenants) for n in cluster.nodes]
    for group, entry in sorted(entries.items()):
        if group == me:
            continue
        left = Counter(p for g in entry.grants for p in g.pods if p) - Counter(materialized.get(group, []))
        for grant in entry.grants:
            domain = cluster.by_ident.get(grant.domain)
            if domain is None:
                continue  # its domain is gone (nodes removed): nothing to hold there
            for need in sorted((p for p in grant.pods if p), reverse=True):
                if left[need] <= 0:
                    continue
                node = min(
                    (i for i in domain.nodes if free[i] >= need), key=lambda i: (free[i], i), default=None
                )
                if node is not None:
                    free[node] -= need
                    left[need] -= 1
            for i in domain.nodes:
                # Granted, with or without pods yet: an exclusive group must not share the domain.
                tenants[i].add(group)
                if entry.exclusive:
                    free[i] = 0
    nodes = [
        replace(n, free=f, tenants=frozenset(t)) for n, f, t in zip(cluster.nodes, free, tenants, strict=True)
    ]
    return Cluster(nodes, cluster.keys)


def prune(entries: Mapping[str, Entry], live: Mapping[str, str]) -> dict[str, Entry]:
    """Entries of groups that still exist (`live`: unique key -> uid); a deleted group frees its grant."""
    return {g: e for g, e in entries.items() if live.get(g) == e.uid}
