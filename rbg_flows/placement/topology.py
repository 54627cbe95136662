"""A cluster's GPU interconnect as placement sees it: nodes, their free GPUs, and their domains.

Domains nest (a node in a multi-node NVLink domain in an RDMA block in a zone), but nothing here needs
them to: the tier between two nodes is read from their labels pair by pair, and a domain is simply the
set of nodes sharing one label value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rbg_flows.api.keys import GROUP_UNIQUE_KEY_LABEL
from rbg_flows.placement.tiers import HOSTNAME, LabelKeys, Tier

JSON = Mapping[str, Any]


@dataclass(frozen=True)
class GpuNode:
    name: str
    free: int
    nvlink: bool  # NVLink/NVSwitch between the node's own GPUs (else PCIe only)
    clique: str | None = None  # multi-node NVLink domain
    block: str | None = None
    zone: str | None = None
    tenants: frozenset[str] = frozenset()  # groups (unique keys) with a running pod here


@dataclass(frozen=True)
class Domain:
    """Nodes sharing one label value; `tier` is what it guarantees between any two of its pods."""

    tier: Tier
    key: str  # the node label the scheduler is told to match
    value: str
    nodes: tuple[int, ...]  # indices into Cluster.nodes

    @property
    def ident(self) -> tuple[int, str, str]:
        return (int(self.tier), self.key, self.value)


def tier_between(a: GpuNode, b: GpuNode) -> Tier:
    """The interconnect between a GPU pod on `a` and one on `b` (symmetric)."""
    if a.name == b.name:
        return Tier.NVLINK if a.nvlink else Tier.PCIE
    if a.clique is not None and a.clique == b.clique:
        return Tier.NVLINK
    if a.block is not None and a.block == b.block:
        return Tier.RDMA
    if a.zone is not None and a.zone == b.zone:
        return Tier.ZONE
    return Tier.NONE


@dataclass
class Cluster:
    nodes: list[GpuNode]
    keys: LabelKeys = field(default_factory=LabelKeys)
    domains: list[Domain] = field(init=False)
    free_gpus: list[int] = field(init=False)  # by node index, read by every feasibility check
    # By domain index: total free GPUs, and the most on one node (cheap necessary conditions).
    room: list[int] = field(init=False)
    largest: list[int] = field(init=False)
    by_ident: dict[tuple[int, str, str], Domain] = field(init=False)
    by_tier: dict[Tier, list[int]] = field(init=False)
    rooms_by_tier: dict[Tier, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        self.domains = _domains(self.nodes, self.keys)
        self.free_gpus = free = [n.free for n in self.nodes]
        self.room = [sum(free[i] for i in d.nodes) for d in self.domains]
        self.largest = [max(free[i] for i in d.nodes) for d in self.domains]
        self.by_ident = {d.ident: d for d in self.domains}
        # Per tier, domain indices by (room, key, value): best fit first, found by bisecting on room.
        self.by_tier: dict[Tier, list[int]] = {}
        for k in sorted(range(len(self.domains)), key=lambda k: (self.room[k], *self.domains[k].ident[1:])):
            self.by_tier.setdefault(self.domains[k].tier, []).append(k)
        self.rooms_by_tier = {t: [self.room[k] for k in ks] for t, ks in self.by_tier.items()}

    @property
    def free(self) -> int:
        return sum(n.free for n in self.nodes)


def _domains(nodes: list[GpuNode], keys: LabelKeys) -> list[Domain]:
    by: dict[tuple[Tier, str, str], list[int]] = {}
    for i, node in enumerate(nodes):
        by.setdefault((Tier.NVLINK if node.nvlink else Tier.PCIE, HOSTNAME, node.name), []).append(i)
        if node.clique is not None:
            by.setdefault((Tier.NVLINK, keys.clique, node.clique), []).append(i)
        if node.block is not None:
            by.setdefault((Tier.RDMA, keys.rdma_block, node.block), []).append(i)
        if node.zone is not None:
            by.setdefault((Tier.ZONE, keys.zone, node.zone), []).append(i)
    return [Domain(t, k, v, tuple(ix)) for (t, k, v), ix in sorted(by.items())]


def gpus_of_pod(pod: JSON, resource: str) -> int:
    """GPUs a pod holds: its containers' requests (limits where no request), or its largest init
    container's, whichever is more, as the scheduler counts it."""
    spec = pod.get("spec") or {}

    def need(container: JSON) -> int:
        res = container.get("resources") or {}
        value = (res.get("requests") or {}).get(resource, (res.get("limits") or {}).get(resource, 0))
        return _count(value)

    main = sum(need(c) for c in spec.get("containers") or [])
    init = max((need(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def _count(value: object) -> int:
    try:
        return max(0, int(float(str(value))))
    except ValueError:
        return 0


def cluster_from_snapshot(
    nodes: Iterable[JSON], pods: Iterable[JSON], keys: LabelKeys | None = None
) -> Cluster:
    """GPU nodes with their free GPUs: allocatable minus what non-terminated pods bound to them hold.
    Nodes without GPUs, unschedulable (cordoned) or not Ready are left out: nothing can land there."""
    keys = keys or LabelKeys()
    used: dict[str, int] = {}
    tenants: dict[str, set[str]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        used[node] = used.get(node, 0) + gpus_of_pod(pod, keys.gpu)
        group = ((pod.get("metadata") or {}).get("labels") or {}).get(GROUP_UNIQUE_KEY_LABEL)
        if group:
            tenants.setdefault(node, set()).add(group)
    out: list[GpuNode] = []
    for node in nodes:
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        allocatable = _count((status.get("allocatable") or {}).get(keys.gpu, 0))
        if allocatable == 0 or spec.get("unschedulable") or not _ready(status):
            continue
        labels = meta.get("labels") or {}
        name = meta["name"]
        out.append(
            GpuNode(
                name=name,
                free=max(0, allocatable - used.get(name, 0)),
                nvlink=labels.get(keys.interconnect) == "nvlink",
                clique=labels.get(keys.clique) or None,
                block=labels.get(keys.rdma_block) or None,
                zone=labels.get(keys.zone) or None,
                tenants=frozenset(tenants.get(name, ())),
            )
        )
    out.sort(key=lambda n: n.name)
    return Cluster(out, keys)


def _ready(status: JSON) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
