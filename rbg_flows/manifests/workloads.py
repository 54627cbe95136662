"""A role's workload: StatefulSet, Deployment or LeaderWorkerSet `<rbg>-<role>`, complete for
server-side apply (no status, no nulls), owned by the group.

Every workload carries the role's labels and annotations plus the group labels (also its selector,
which never changes), the role revision hash label, and the `role-size` annotation; its pod
template is `podtemplate.finish_pod_template` of the role's template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from rbg_flows.api import (
    DEPLOYMENT,
    LEADERWORKERSET,
    STATEFULSET,
    RoleBasedGroup,
    RoleSpec,
    resolve_int_or_percent,
    service_name,
    workload_name,
)
from rbg_flows.api.intstr import parse_percent
from rbg_flows.api.keys import ROLE_SIZE_ANNOTATION
from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.manifests.engine_runtime import PINNED_ANNOTATION, pinned_annotation, rolling_fingerprints
from rbg_flows.manifests.gang import ServedGangApis, join_gang
from rbg_flows.manifests.hashing import role_revision_hash
from rbg_flows.manifests.labels import (
    group_unique_key,
    identity,
    object_meta,
    role_labels,
    role_revision_label,
)
from rbg_flows.manifests.placement import place_workload, recorded_placement
from rbg_flows.manifests.podtemplate import finish_pod_template
from rbg_flows.manifests.service import build_headless_service
from rbg_flows.manifests.template import leader_worker_templates, resolve_pod_template
from rbg_flows.messages import RolePlacement

LWS_API_VERSION: Final = "leaderworkerset.x-k8s.io/v1"

Profiles = Mapping[str, ClusterEngineRuntimeProfileSpec]


def build_workload(
    rbg: RoleBasedGroup,
    role: RoleSpec,
    *,
    partition: int | None = None,
    profiles: Profiles | None = None,
    placement: RolePlacement | None = None,
    gang: ServedGangApis | None = None,
) -> dict[str, Any]:
    """The role's workload object.

    `partition` overrides the one from rolloutStrategy (StatefulSet and LeaderWorkerSet), for the
    upgrade operation that moves it step by step; re-applying the object must then pass the current
    value, or the apply would reset it. `profiles` are the engine runtime profiles the role names (by
    name), resolved and pinned by the caller (`engine_runtime.pin_profiles`). `placement` is the
    operation's own decision; without one, the decision recorded in the group's status is kept, so
    an upgrade or a repair never moves placed pods. `gang` is what the cluster serves for the group's
    gang scheduling (`spec.podGroupPolicy`), read by the caller.
    """
    kind = role.workload.key
    if kind == STATEFULSET:
        body = build_statefulset(rbg, role, partition=partition, profiles=profiles)
    elif kind == DEPLOYMENT:
        body = build_deployment(rbg, role, profiles=profiles)
    elif kind == LEADERWORKERSET:
        body = build_leaderworkerset(rbg, role, partition=partition, profiles=profiles)
    else:
        raise ValueError(f"role {role.name!r}: workload {kind} is not served")
    chosen = placement or recorded_placement(rbg, role.name)
    placed = place_workload(body, chosen, group_unique_key(*identity(rbg)))
    return join_gang(placed, rbg, gang or ServedGangApis())


def build_role_objects(
    rbg: RoleBasedGroup, role: RoleSpec, profiles: Profiles | None = None
) -> list[dict[str, Any]]:
    """What one role owns: its workload, and the headless Service for a StatefulSet role."""
    objects = [build_workload(rbg, role, profiles=profiles)]
    if role.workload.key == STATEFULSET:
        objects.append(build_headless_service(rbg, role))
    return objects


def build_statefulset(
    rbg: RoleBasedGroup, role: RoleSpec, *, partition: int | None = None, profiles: Profiles | None = None
) -> dict[str, Any]:
    _, name = identity(rbg)
    rolling = role.rollout_strategy.rolling_update
    rolling_update: dict[str, Any] = {"partition": _partition(role, partition)}
    # A StatefulSet refuses maxUnavailable 0; with maxSurge only, the orchestrator surges instead.
    if _literal_value(rolling.max_unavailable) != 0:
        rolling_update["maxUnavailable"] = rolling.max_unavailable
    template = finish_pod_template(rbg, role, resolve_pod_template(rbg.spec, role), profiles)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _workload_meta(rbg, role, profiles),
        "spec": {
            "replicas": role.replicas,
            "selector": {"matchLabels": role_labels(rbg, role)},
            "serviceName": service_name(name, role.name),
            # Instances of a role start together (an engine waits for its peers); ordered start
            # would deadlock them.
            "podManagementPolicy": "Parallel",
            "minReadySeconds": role.min_ready_seconds,
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": rolling_update},
            "template": _without_nulls(template),
        },
    }


def build_deployment(
    rbg: RoleBasedGroup, role: RoleSpec, *, profiles: Profiles | None = None
) -> dict[str, Any]:
    rolling = role.rollout_strategy.rolling_update
    template = finish_pod_template(rbg, role, resolve_pod_template(rbg.spec, role), profiles)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _workload_meta(rbg, role, profiles),
        "spec": {
            "replicas": role.replicas,
            "selector": {"matchLabels": role_labels(rbg, role)},
            "minReadySeconds": role.min_ready_seconds,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": rolling.max_surge, "maxUnavailable": rolling.max_unavailable},
            },
            "template": _without_nulls(template),
        },
    }


def build_leaderworkerset(
    rbg: RoleBasedGroup, role: RoleSpec, *, partition: int | None = None, profiles: Profiles | None = None
) -> dict[str, Any]:
    rolling = role.rollout_strategy.rolling_update
    leader, worker = leader_worker_templates(rbg.spec, role)
    return {
        "apiVersion": LWS_API_VERSION,
        "kind": "LeaderWorkerSet",
        "metadata": _workload_meta(rbg, role, profiles),
        "spec": {
            "replicas": role.replicas,
            "startupPolicy": "LeaderCreated",
            "leaderWorkerTemplate": {
                "size": role.pods_per_instance,
                "restartPolicy": lws_restart_policy(role),
                "leaderTemplate": _without_nulls(finish_pod_template(rbg, role, leader, profiles)),
                "workerTemplate": _without_nulls(finish_pod_template(rbg, role, worker, profiles)),
            },
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdateConfiguration": {
                    "maxUnavailable": rolling.max_unavailable,
                    "maxSurge": rolling.max_surge,
                    "partition": _partition(role, partition),
                },
            },
        },
    }


def lws_restart_policy(role: RoleSpec) -> str:
    """The LeaderWorkerSet's own restart policy for the role's restartPolicy.

    As in the reference, both recreating policies recreate the instance's group at once (for
    RecreateRBGOnPodRestart the orchestrator then recreates the rest of the group); None leaves a
    failed pod to its StatefulSet.
    """
    return "None" if role.effective_restart_policy == "None" else "RecreateGroupOnPodRestart"


def _workload_meta(rbg: RoleBasedGroup, role: RoleSpec, profiles: Profiles | None) -> dict[str, Any]:
    fingerprints = rolling_fingerprints(role, profiles or {})
    labels = {
        **role.labels,
        **role_labels(rbg, role),
        role_revision_label(role.name): role_revision_hash(rbg.spec, role, fingerprints),
    }
    annotations = {**role.annotations, ROLE_SIZE_ANNOTATION: str(role.replicas)}
    pinned = pinned_annotation(role, profiles or {})
    if pinned is not None:
        annotations[PINNED_ANNOTATION] = pinned
    _, name = identity(rbg)
    return object_meta(rbg, workload_name(name, role.name), labels, annotations)


def _partition(role: RoleSpec, override: int | None) -> int:
    if override is not None:
        return override
    value = role.rollout_strategy.rolling_update.partition
    # Percentages round up, as the reference and Kubernetes do for partition-like counts.
    return resolve_int_or_percent(value, role.replicas, round_up=True)


def _literal_value(value: int | str) -> int:
    """The number written in an int-or-percent, ignoring the '%' (how Kubernetes tests for 0)."""
    return parse_percent(value) if isinstance(value, str) else value


def _without_nulls(value: Any) -> Any:
    """User templates may carry explicit nulls; an applied object must not (null means "remove" to
    server-side apply)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value
