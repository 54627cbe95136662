"""Limits every spec must respect before the orchestrator builds anything from it (pure).

Two kinds of limit live here:

- Sizes. The worker builds a few structures per replica (the discovery file lists every instance,
  a StatefulSet rollout tracks every ordinal). The CRD lets `replicas` go up to int32, so without a
  check up front one manifest could make the worker build billions of entries. Every bound below is
  computed from counts and name lengths, never by building the structure it bounds.
- Names. Kubernetes derives names and label values from ours (pods with their ordinals, the
  StatefulSet controller's `controller-revision-hash` label, LeaderWorkerSet worker pods...). One that
  does not fit is refused by the API server only when a controller tries to create it, long after the
  workload was accepted, so the group would sit in Deploying forever. They are all checked here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import BaseModel, ConfigDict

from rbg_flows.api.common import DNS1123_LABEL_MAX_LENGTH, address_service_name, service_name, workload_name
from rbg_flows.api.rbg import DEPLOYMENT, LEADERWORKERSET, STATEFULSET, RoleSpec

# A ConfigMap's data may hold at most 1 MiB (Kubernetes' MaxConfigMapSize, the same as a Secret's).
CONFIGMAP_MAX_BYTES: Final = 1024 * 1024

# The discovery file lists one entry per instance. The shortest possible entry (one-character group
# and role names, no ports) is `    - address: a-b-<i>.a-b\n`, 24 bytes plus the digits of <i>, so even
# with the shortest names no more than about 36,500 instances fit in 1 MiB. The ceiling is that,
# rounded down to a power of two so that it does not move with the entry format: 1 MiB / 32 bytes.
# With real names the exact estimate below is what binds (pd-demo's ~75-byte entries allow ~14,000).
MIN_DISCOVERY_ENTRY_BYTES: Final = 32
MAX_ROLE_REPLICAS: Final = CONFIGMAP_MAX_BYTES // MIN_DISCOVERY_ENTRY_BYTES  # 32768

# Kubernetes' documented largest supported cluster holds 150,000 pods; a group needing more could
# never become Ready anywhere.
MAX_GROUP_PODS: Final = 150_000

# A LeaderWorkerSet instance is one leader plus workers; no instance can usefully exceed the pods of
# the largest cluster, and the worker ordinals must fit in pod names (checked with the names).
MAX_LWS_SIZE: Final = MAX_GROUP_PODS

# Kubernetes' controller hashes (StatefulSet revisions, ComputeHash) are a 32-bit FNV value written in
# decimal with the vowel-free alphabet: at most 10 characters.
CONTROLLER_HASH_MAX_LENGTH: Final = len(str(2**32 - 1))

# Every child of a RoleBasedGroupSet is a group of its own (an entity workflow, its workloads, its
# discovery ConfigMap): a thousand groups is far past any inference fleet one set describes, and bounds
# what one typo in spec.replicas makes the orchestrator create.
MAX_SET_REPLICAS: Final = 1000

# Label values and the name part of label keys are limited to 63 characters.
LABEL_MAX_LENGTH: Final = 63


@dataclass(frozen=True)
class DerivedName:
    """A name (or label) Kubernetes will derive from ours, with the limit it must respect."""

    what: str
    value: str
    limit: int
    rule: str

    @property
    def fits(self) -> bool:
        return len(self.value) <= self.limit

    def describe(self) -> str:
        n = len(self.value)
        return f"{self.what} {self.value!r} is {n} characters, more than {self.limit} ({self.rule})"


def _hash_placeholder() -> str:
    return "h" * CONTROLLER_HASH_MAX_LENGTH


def derived_names(rbg_name: str, role: RoleSpec) -> list[DerivedName]:
    """Every name and label derived from the group and role names for this role, at its highest
    ordinal. The controller hash is represented by its longest form (10 characters)."""
    workload = workload_name(rbg_name, role.name)
    last = max(role.replicas - 1, 0)
    label = f"label values are at most {LABEL_MAX_LENGTH} characters"
    hostname = f"pod names are their hostnames, DNS-1123 labels of at most {DNS1123_LABEL_MAX_LENGTH}"
    # The role revision label key and the group name label value are checked on their own (they do not
    # depend on the kind); these are the names that do.
    names = [
        DerivedName(
            "workload name", workload, DNS1123_LABEL_MAX_LENGTH, "a DNS-1123 label of at most 63 characters"
        ),
    ]
    key = role.workload.key
    if key == STATEFULSET:
        names += [
            DerivedName(
                f"pod name (highest ordinal {last})", f"{workload}-{last}", DNS1123_LABEL_MAX_LENGTH, hostname
            ),
            DerivedName(
                "StatefulSet controller-revision-hash label value",
                f"{workload}-{_hash_placeholder()}",
                LABEL_MAX_LENGTH,
                f"<statefulset>-<hash of up to {CONTROLLER_HASH_MAX_LENGTH} characters>; {label}",
            ),
        ]
    elif key == LEADERWORKERSET:
        size = role.leader_worker_set.size if role.leader_worker_set else 1
        names += [
            DerivedName(
                "LeaderWorkerSet Service name",
                workload,
                DNS1123_LABEL_MAX_LENGTH,
                "a DNS-1035 label of at most 63",
            ),
            DerivedName(
                f"leader pod name (highest group {last})",
                f"{workload}-{last}",
                DNS1123_LABEL_MAX_LENGTH,
                hostname,
            ),
            DerivedName(
                "leader StatefulSet controller-revision-hash label value",
                f"{workload}-{_hash_placeholder()}",
                LABEL_MAX_LENGTH,
                f"<statefulset>-<hash of up to {CONTROLLER_HASH_MAX_LENGTH} characters>; {label}",
            ),
        ]
        if size > 1:
            names += [
                DerivedName(
                    f"worker pod name (highest group {last}, worker {size - 1})",
                    f"{workload}-{last}-{size - 1}",
                    DNS1123_LABEL_MAX_LENGTH,
                    hostname,
                ),
                DerivedName(
                    "worker StatefulSet controller-revision-hash label value",
                    f"{workload}-{last}-{_hash_placeholder()}",
                    LABEL_MAX_LENGTH,
                    f"<worker statefulset>-<hash of up to {CONTROLLER_HASH_MAX_LENGTH} characters>; {label}",
                ),
            ]
    elif key == DEPLOYMENT:
        pass  # ReplicaSet and pod names are generated and truncated by the Deployment controller
    return names


def too_long(rbg_name: str, role: RoleSpec) -> list[DerivedName]:
    return [name for name in derived_names(rbg_name, role) if not name.fits]


def _service_name_clashes(rbg_name: str, roles: Sequence[RoleSpec]) -> list[LimitError]:
    """Roles whose headless Services would get one name: `s-<rbg>-<role>` is cut to 63 characters, so two
    long role names that differ only in their last characters would share a Service (and each other's
    pods' DNS names). The reference does not check this; refusing it up front is the only safe answer."""
    errors: list[LimitError] = []
    first: dict[str, str] = {}
    for i, role in enumerate(roles):
        if role.workload.key != STATEFULSET:
            continue
        name = service_name(rbg_name, role.name)
        other = first.setdefault(name, role.name)
        if other != role.name:
            errors.append(
                LimitError(
                    path=("roles", i, "name"),
                    message=f"the headless Service of role {role.name!r} would be {name!r}, the same as role "
                    f"{other!r}'s (s-<group>-<role> is cut to {DNS1123_LABEL_MAX_LENGTH} characters): "
                    "shorten the group or role names",
                )
            )
    return errors


def _digits_total(n: int) -> int:
    """Characters needed to write 0, 1, ..., n-1 in decimal, computed without enumerating them."""
    total, width, low = 0, 1, 0
    while low < n:
        high = min(n, 10**width)
        total += (high - low) * width
        low, width = high, width + 1
    return max(total, 0)


def _yaml_key_bytes(key: str) -> int:
    # Upper bound: a key the YAML 1.1 resolver would read as something else ("yes", "1") is quoted.
    return len(key) + 2


def discovery_role_bytes(rbg_name: str, role: RoleSpec) -> int:
    """Upper bound of the bytes the role adds to the discovery file (its `roles:` entry and its line in
    `group.roles`), as discovery.discovery_config renders it; arithmetic, O(number of ports)."""
    workload = len(workload_name(rbg_name, role.name))
    n = role.replicas
    # "    - address: " + <workload>-<i>.<service> + "\n". Never quoted: a DNS label, '-<i>.' and another
    # DNS label is no YAML 1.1 number, boolean, null or timestamp.
    service = len(address_service_name(rbg_name, role.name, leader_worker_set=role.is_leader_worker_set))
    per_instance = len("    - address: ") + workload + 2 + service + 1
    if role.service_ports:
        per_instance += len("      ports:\n")
        for port in role.service_ports:
            key = port.name.replace("-", "_").lower() if port.name else f"port{port.port}"
            per_instance += 8 + _yaml_key_bytes(key) + 2 + len(str(port.port)) + 1
    head = (
        len("  - \n")
        + _yaml_key_bytes(role.name)  # group.roles line
        + len("  :\n")
        + _yaml_key_bytes(role.name)  # roles.<role>:
        + len("    instances: []\n" if n == 0 else "    instances:\n")
        + len("    size: \n")
        + len(str(n))
    )
    return head + n * per_instance + _digits_total(n)


def discovery_bytes(rbg_name: str, roles: Sequence[RoleSpec]) -> int:
    """Upper bound of the size of the discovery file for these roles."""
    head = len("group:\n  name: \n") + _yaml_key_bytes(rbg_name) + len("  roles:\n  size: \nroles:\n")
    head += len(str(len(roles)))
    return head + sum(discovery_role_bytes(rbg_name, role) for role in roles)


class LimitError(BaseModel):
    """A limit a spec exceeds: where, and why (turned into a FieldError by validation)."""

    model_config = ConfigDict(frozen=True)

    path: tuple[str | int, ...]
    message: str


def check_limits(rbg_name: str | None, roles: Sequence[RoleSpec]) -> list[LimitError]:
    """Size and name limits of a group's roles. `rbg_name` None (not known yet) skips the name checks and
    estimates the discovery file with an empty name (a lower bound)."""
    errors: list[LimitError] = []
    for i, role in enumerate(roles):
        if role.replicas > MAX_ROLE_REPLICAS:
            errors.append(
                LimitError(
                    path=("roles", i, "replicas"),
                    message=f"{role.replicas} is more than {MAX_ROLE_REPLICAS}, the most replicas a role "
                    f"may have (the discovery ConfigMap lists every instance and holds at most "
                    f"{CONFIGMAP_MAX_BYTES} bytes)",
                )
            )
        if role.is_leader_worker_set and role.pods_per_instance > MAX_LWS_SIZE:
            errors.append(
                LimitError(
                    path=("roles", i, "leaderWorkerSet", "size"),
                    message=f"{role.pods_per_instance} is more than {MAX_LWS_SIZE} pods per instance",
                )
            )
        if rbg_name:
            long = too_long(rbg_name, role)
            if long:
                errors.append(
                    LimitError(
                        path=("roles", i, "name"),
                        message="; ".join(n.describe() for n in long) + ": shorten the group or role name",
                    )
                )
    if rbg_name:
        errors += _service_name_clashes(rbg_name, roles)
    # A role over its own ceiling was reported already: a second, group-wide message about the same
    # number would only blur the first.
    oversized = any(r.replicas > MAX_ROLE_REPLICAS or r.pods_per_instance > MAX_LWS_SIZE for r in roles)
    pods = sum(r.replicas * r.pods_per_instance for r in roles)
    if pods > MAX_GROUP_PODS and not oversized:
        errors.append(
            LimitError(
                path=("roles",),
                message=f"the group has {pods} pods in total, more than {MAX_GROUP_PODS} (the largest "
                "cluster Kubernetes supports)",
            )
        )
    if not oversized:
        size = discovery_bytes(rbg_name or "", roles)
        if size > CONFIGMAP_MAX_BYTES:
            errors.append(
                LimitError(
                    path=("roles",),
                    message=f"the discovery ConfigMap would be about {size} bytes, more than "
                    f"{CONFIGMAP_MAX_BYTES} (a ConfigMap's limit): fewer replicas or shorter names",
                )
            )
    return errors
