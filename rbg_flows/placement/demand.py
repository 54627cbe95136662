"""What a group asks of the cluster: its GPU pods, grouped into components that must share a domain.

Pods communicate along `spec.placement.pairs` (default: every pair of GPU roles) and inside one
LeaderWorkerSet instance (leader and workers). Roles linked by pairs form one component, placed in one
domain; a LeaderWorkerSet role in no pair is placed instance by instance; any other role in no pair has
nobody to talk to and is left to the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from rbg_flows.api import RoleBasedGroupSpec, RoleSpec
from rbg_flows.manifests.template import leader_worker_templates, resolve_pod_template
from rbg_flows.placement.topology import gpus_of_pod


@dataclass(frozen=True)
class Component:
    name: str
    roles: tuple[str, ...]
    pods: tuple[int, ...]  # GPUs per pod, largest first
    pairs: int  # communicating pod pairs inside it: the weight of its tier in the score

    @property
    def gpus(self) -> int:
        return sum(self.pods)


def role_pods(spec: RoleBasedGroupSpec, role: RoleSpec, gpu: str) -> list[list[int]]:
    """GPUs per pod of each instance of the role (an instance is one pod unless LeaderWorkerSet)."""
    if role.is_leader_worker_set:
        leader, worker = leader_worker_templates(spec, role)
        size = role.leader_worker_set.size if role.leader_worker_set else 1
        shape = [gpus_of_pod(leader, gpu)] + [gpus_of_pod(worker, gpu)] * (size - 1)
    else:
        shape = [gpus_of_pod(resolve_pod_template(spec, role), gpu)]
    return [list(shape) for _ in range(role.replicas)]


def components(spec: RoleBasedGroupSpec, gpu: str = "nvidia.com/gpu") -> list[Component]:
    pods = {r.name: role_pods(spec, r, gpu) for r in spec.roles}
    gpu_roles = [r.name for r in spec.roles if any(g for inst in pods[r.name] for g in inst)]
    asked = spec.placement.pairs if spec.placement and spec.placement.pairs else None
    pairs = [(a, b) for a, b in asked] if asked else list(combinations(gpu_roles, 2))
    pairs = [(a, b) for a, b in pairs if a in gpu_roles and b in gpu_roles and a != b]
    parent = {r: r for r in gpu_roles}

    def root(r: str) -> str:
        while parent[r] != r:
            r = parent[r]
        return r

    for a, b in pairs:
        parent[root(a)] = root(b)
    linked: dict[str, list[str]] = {}
    for a, b in pairs:
        for r in (a, b):
            members = linked.setdefault(root(r), [])
            if r not in members:
                members.append(r)
    out: list[Component] = []
    for members in linked.values():
        roles = tuple(sorted(members))
        count = {r: sum(len(i) for i in pods[r]) for r in roles}
        inside = sum(
            len(inst) * (len(inst) - 1) // 2
            for r in roles
            if spec.role(r).is_leader_worker_set
            for inst in pods[r]
        )
        between = sum(count[a] * count[b] for a, b in set(pairs) if a in count and b in count)
        flat = sorted((g for r in roles for inst in pods[r] for g in inst), reverse=True)
        out.append(Component("+".join(roles), roles, tuple(flat), between + inside))
    for name in gpu_roles:
        if name in {r for c in out for r in c.roles} or not spec.role(name).is_leader_worker_set:
            continue
        for i, inst in enumerate(pods[name]):
            if len(inst) > 1:
                n = len(inst)
                out.append(
                    Component(f"{name}/{i}", (name,), tuple(sorted(inst, reverse=True)), n * (n - 1) // 2)
                )
    return sorted(out, key=lambda c: (-c.pairs, -c.gpus, c.name))
