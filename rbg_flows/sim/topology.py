"""The simulated cluster's nodes: a topology file model, its validation, and generated GPU clusters.

Label keys follow `api.md` ("Topology-aware placement"): `nvidia.com/gpu.clique` for a multi-node NVLink
domain, `rbg.x-k8s.io/gpu-interconnect` inside the node, `rbg.x-k8s.io/rdma-block`, and the standard zone.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

GPU = "nvidia.com/gpu"
CLIQUE = "nvidia.com/gpu.clique"
INTERCONNECT = "rbg.x-k8s.io/gpu-interconnect"
RDMA_BLOCK = "rbg.x-k8s.io/rdma-block"
ZONE = "topology.kubernetes.io/zone"
REGION = "topology.kubernetes.io/region"
SIM_NODE_LABEL = "sim.rbg.x-k8s.io/node"

_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


class TopologyError(ValueError):
    """A malformed topology file; the message names the field path and the reason."""


def _quantity(v: object) -> str:
    # YAML reads `cpu: 32` as an int; Kubernetes accepts that spelling, so numbers are taken as strings.
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise ValueError(f"{v!r} is not a Kubernetes quantity")
    if not _QUANTITY.match(str(v)):
        raise ValueError(f"{str(v)!r} is not a Kubernetes quantity")
    return str(v)


# Validated per value, so an error's path names the resource (`nodes[0].capacity.cpu`).
Quantity = Annotated[str, BeforeValidator(_quantity)]


class Taint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class NodeGroup(BaseModel):
    """`count` identical nodes named `<name>-<i>` (or exactly `name` when count is 1 and unnumbered)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    count: int = Field(1, ge=1)
    numbered: bool | None = None
    capacity: dict[str, Quantity] = Field(
        default_factory=lambda: {"cpu": "32", "memory": "256Gi", "pods": "110"}
    )
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > 240 or not _DNS_SUBDOMAIN.match(v):
            raise ValueError(f"{v!r} is not a DNS subdomain name")
        return v

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, v: dict[str, str]) -> dict[str, str]:
        v.setdefault("pods", "110")
        return v

    def node_names(self) -> list[str]:
        numbered = self.numbered if self.numbered is not None else self.count > 1
        return [f"{self.name}-{i}" for i in range(self.count)] if numbered else [self.name]


class Topology(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nodes: list[NodeGroup] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Topology:
        seen: set[str] = set()
        for i, group in enumerate(self.nodes):
            for name in group.node_names():
                if name in seen:
                    raise ValueError(f"nodes[{i}]: node name {name!r} is used twice")
                seen.add(name)
        return self

    def expand(self) -> list[tuple[str, NodeGroup]]:
        return [(name, g) for g in self.nodes for name in g.node_names()]


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_topology(text: str, source: str = "topology") -> Topology:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise TopologyError(f"{source}: not YAML: {e}") from e
    try:
        return Topology.model_validate(doc)
    except ValidationError as e:
        problems = "; ".join(f"{_path(err['loc']) or '(root)'}: {err['msg']}" for err in e.errors())
        raise TopologyError(f"{source}: {problems}") from e


def load_topology(path: Path | None) -> Topology:
    return parse_topology(path.read_text(), str(path)) if path else default_topology()


def _gpu_node(gpus: int, cpu: int = 96, memory: str = "1Ti") -> dict[str, str]:
    return {"cpu": str(cpu), "memory": memory, GPU: str(gpus), "pods": "110"}


def default_topology() -> Topology:
    """A small realistic GPU cluster: 16 nodes x 8 GPUs in 2 zones and 4 RDMA blocks, plus 2 CPU nodes.

    zone-a/rdma-a0: NVLink H100 nodes; zone-a/rdma-a1: PCIe-only L40S nodes; zone-b/rdma-b0: GB200-style
    nodes sharing one multi-node NVLink domain (clique); zone-b/rdma-b1: PCIe-only nodes.
    """

    def group(
        name: str, zone: str, block: str, link: str, product: str, clique: str | None = None
    ) -> NodeGroup:
        labels = {
            ZONE: zone,
            REGION: "sim",
            RDMA_BLOCK: block,
            INTERCONNECT: link,
            "nvidia.com/gpu.product": product,
        }
        if clique:
            labels[CLIQUE] = clique
        return NodeGroup(name=name, count=4, capacity=_gpu_node(8), labels=labels)

    return Topology(
        nodes=[
            group("gpu-a-nvl", "zone-a", "rdma-a0", "nvlink", "NVIDIA-H100-80GB-HBM3"),
            group("gpu-a-pcie", "zone-a", "rdma-a1", "pcie", "NVIDIA-L40S"),
            group("gpu-b-nvl", "zone-b", "rdma-b0", "nvlink", "NVIDIA-GB200", clique="nvl-domain-b0.0"),
            group("gpu-b-pcie", "zone-b", "rdma-b1", "pcie", "NVIDIA-L40S"),
            NodeGroup(
                name="cpu-a",
                count=1,
                numbered=True,
                labels={ZONE: "zone-a", REGION: "sim"},
                capacity={"cpu": "64", "memory": "256Gi", "pods": "250"},
            ),
            NodeGroup(
                name="cpu-b",
                count=1,
                numbered=True,
                labels={ZONE: "zone-b", REGION: "sim"},
                capacity={"cpu": "64", "memory": "256Gi", "pods": "250"},
            ),
        ]
    )


def generated_topology(
    nodes: int,
    *,
    gpus_per_node: int = 8,
    zones: int = 4,
    block_size: int = 16,
    clique_size: int = 8,
    nvlink_every: int = 2,
) -> Topology:
    """A large cluster for benchmarks: blocks of `block_size` nodes spread over zones; every
    `nvlink_every`-th block is NVLink, and NVLink blocks are cut into multi-node NVLink cliques."""
    groups: list[NodeGroup] = []
    for b in range((nodes + block_size - 1) // block_size):
        count = min(block_size, nodes - b * block_size)
        zone = f"zone-{b % zones}"
        nvlink = b % nvlink_every == 0
        for c in range(0, count, clique_size if nvlink else count):
            size = min(clique_size if nvlink else count, count - c)
            labels = {
                ZONE: zone,
                REGION: "sim",
                RDMA_BLOCK: f"rdma-{b}",
                INTERCONNECT: "nvlink" if nvlink else "pcie",
            }
            if nvlink:
                labels[CLIQUE] = f"clique-{b}.{c // clique_size}"
            groups.append(
                NodeGroup(
                    name=f"gpu-{b}-{c}",
                    count=size,
                    numbered=True,
                    capacity=_gpu_node(gpus_per_node),
                    labels=labels,
                )
            )
    return Topology(nodes=groups)


def dump_topology(topology: Topology) -> str:
    return yaml.safe_dump(topology.model_dump(mode="json", exclude_defaults=True), sort_keys=False)
