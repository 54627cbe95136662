"""Interconnect tiers between two GPU pods, best first, and the node labels that describe them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from rbg_flows.api.rbg import PlacementLevel, PlacementTier


class Tier(IntEnum):
    """The value of a tier is its weight in a group's score: a pair at NVLink counts four times one
    that only shares a zone."""

    NONE = 0
    ZONE = 1
    RDMA = 2
    PCIE = 3
    NVLINK = 4

    @property
    def label(self) -> PlacementTier:
        names: dict[Tier, PlacementTier] = {
            Tier.NONE: "none",
            Tier.ZONE: "zone",
            Tier.RDMA: "rdma",
            Tier.PCIE: "pcie",
            Tier.NVLINK: "nvlink",
        }
        return names[self]

    @classmethod
    def of_level(cls, level: PlacementLevel) -> Tier:
        return {"nvlink": cls.NVLINK, "pcie": cls.PCIE, "rdma": cls.RDMA, "zone": cls.ZONE}[level]


# What a domain of each tier is called in messages ("needs 8 GPUs in one rdma-block").
DOMAIN_NOUN: dict[Tier, str] = {
    Tier.NVLINK: "nvlink-domain",
    Tier.PCIE: "node",
    Tier.RDMA: "rdma-block",
    Tier.ZONE: "zone",
    Tier.NONE: "cluster",
}

HOSTNAME = "kubernetes.io/hostname"


@dataclass(frozen=True)
class LabelKeys:
    """Node label keys that describe the interconnect (api.md defaults; configurable on the worker)."""

    clique: str = "nvidia.com/gpu.clique"
    interconnect: str = "rbg.x-k8s.io/gpu-interconnect"
    rdma_block: str = "rbg.x-k8s.io/rdma-block"
    zone: str = "topology.kubernetes.io/zone"
    gpu: str = "nvidia.com/gpu"
