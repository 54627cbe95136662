"""The API models: realistic manifests parse unchanged, defaults match api.md, dumps round-trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rbg_flows.api import (
    Condition,
    RoleBasedGroup,
    RoleBasedGroupScalingAdapter,
    RoleBasedGroupSet,
    RoleSpec,
    errors_from_validation_error,
)
from rbg_flows.api.common import KubeModel

PD_MANIFEST = """
apiVersion: workloads.x-k8s.io/v1alpha1
kind: RoleBasedGroup
metadata:
  name: sglang-pd
  namespace: inference
  labels: {app: sglang-pd}
spec:
  podGroupPolicy:
    kubeScheduling: {}
  coordination:
  - name: prefill-decode
    roles: [prefill, decode]
    strategy:
      rollingUpdate: {maxSkew: "10%", maxUnavailable: "20%"}
      scaling: {maxSkew: 5}
  roles:
  - name: router
    replicas: 1
    workload: {apiVersion: apps/v1, kind: Deployment}
    dependencies: [prefill, decode]
    servicePorts:
    - {name: http, port: 8000, targetPort: http}
    template:
      spec:
        containers:
        - name: router
          image: lmsysorg/sglang-router:v0.2.1
          command: [python3, -m, sglang_router.launch_router, --pd-disaggregation]
          ports: [{name: http, containerPort: 8000}]
  - name: prefill
    replicas: 2
    labels: {tier: prefill}
    rolloutStrategy:
      rollingUpdate: {maxUnavailable: "50%", maxSurge: 1, partition: 1}
    servicePorts:
    - {name: http, port: 30000}
    - {name: bootstrap-port, port: 8998, protocol: TCP}
    template:
      metadata:
        labels: {engine: sglang}
      spec:
        containers:
        - name: sglang
          image: lmsysorg/sglang:v0.5.3
          command: [python3, -m, sglang.launch_server, --disaggregation-mode, prefill]
          resources:
            limits: {nvidia.com/gpu: "1"}
  - name: decode
    replicas: 1
    restartPolicy: RecreateRBGOnPodRestart
    scalingAdapter: {enable: true}
    servicePorts:
    - {name: http, port: 30000}
    template:
      spec:
        containers:
        - name: sglang
          image: lmsysorg/sglang:v0.5.3
          command: [python3, -m, sglang.launch_server, --disaggregation-mode, decode]
"""

LWS_MANIFEST = """
apiVersion: workloads.x-k8s.io/v1alpha1
kind: RoleBasedGroup
metadata: {name: lws-pd}
spec:
  roleTemplates:
  - name: sglang
    template:
      spec:
        containers: [{name: sglang, image: "lmsysorg/sglang:v0.5.3"}]
  roles:
  - name: prefill
    replicas: 2
    workload: {apiVersion: leaderworkerset.x-k8s.io/v1, kind: LeaderWorkerSet}
    leaderWorkerSet:
      size: 2
      patchLeaderTemplate:
        metadata: {labels: {leader: "true"}}
      patchWorkerTemplate:
        spec:
          containers: [{name: sglang, args: [--worker]}]
    templateRef: {name: sglang}
    templatePatch:
      spec:
        containers: [{name: sglang, args: [--disaggregation-mode, prefill]}]
  - name: decode
    workload: {apiVersion: leaderworkerset.x-k8s.io/v1, kind: LeaderWorkerSet}
    leaderWorkerSet: {}
    restartPolicyConfig: {maxRestarts: 5}
    templateRef: {name: sglang}
    templatePatch: {}
    engineRuntimes:
    - profileName: patio-runtime
      injectContainers: [sglang]
      containers: [{name: patio-runtime, args: [--port=9091]}]
  rolloutOrder: [decode, prefill]
  placement:
    policy: Required
    level: rdma
    pairs: [[prefill, decode]]
"""

RBGS_MANIFEST = """
apiVersion: workloads.x-k8s.io/v1alpha1
kind: RoleBasedGroupSet
metadata: {name: pd-set}
spec:
  replicas: 3
  template:
    roles:
    - name: worker
      replicas: 2
      template:
        spec:
          containers: [{name: w, image: busybox}]
status:
  observedGeneration: 2
  replicas: 3
  readyReplicas: 2
  conditions:
  - type: Ready
    status: "False"
    reason: ChildNotReady
    message: pd-set-2
    lastTransitionTime: "2025-06-01T10:00:00Z"
"""

RBGSA_MANIFEST = """
apiVersion: workloads.x-k8s.io/v1alpha1
kind: RoleBasedGroupScalingAdapter
metadata:
  name: sglang-pd-decode
  ownerReferences:
  - apiVersion: workloads.x-k8s.io/v1alpha1
    kind: RoleBasedGroup
    name: sglang-pd
    uid: u-1
    controller: true
spec:
  replicas: 3
  scaleTargetRef: {name: sglang-pd, role: decode}
status:
  phase: Bound
  replicas: 3
  readyReplicas: 2
  selector: rolebasedgroup.workloads.x-k8s.io/name=sglang-pd,rolebasedgroup.workloads.x-k8s.io/role=decode
  lastScaleTime: "2025-06-01T10:00:00Z"
"""

ROLLING_UPDATE_DEFAULTS = {"maxUnavailable": 1, "maxSurge": 0, "partition": 0}


def load(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def dump(model: KubeModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True)


def assert_contains(actual: Any, expected: Any, path: str = "") -> None:
    """Everything written in `expected` is in `actual`, unchanged (defaults may be added)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} was dropped"
            assert_contains(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(a, e, f"{path}[{i}]")
    else:
        assert actual == expected and type(actual) is type(expected), f"{path}: {actual!r} != {expected!r}"


MANIFESTS: dict[str, tuple[type[KubeModel], str]] = {
    "pd": (RoleBasedGroup, PD_MANIFEST),
    "lws": (RoleBasedGroup, LWS_MANIFEST),
    "rbgs": (RoleBasedGroupSet, RBGS_MANIFEST),
    "rbgsa": (RoleBasedGroupScalingAdapter, RBGSA_MANIFEST),
}


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_manifest_parses_unchanged_and_round_trips(name: str) -> None:
    model_type, text = MANIFESTS[name]
    manifest = load(text)
    first = dump(model_type.model_validate(manifest))
    assert_contains(first, manifest)
    assert dump(model_type.model_validate(first)) == first
    # Python-mode and JSON-mode dumps agree: nothing non-JSON (enums, datetimes) leaks out.
    assert model_type.model_validate(manifest).model_dump(mode="json", exclude_none=True) == first


def test_pd_manifest_fields_and_defaults() -> None:
    rbg = RoleBasedGroup.model_validate(load(PD_MANIFEST))
    assert rbg.metadata.name == "sglang-pd" and rbg.metadata.namespace == "inference"
    assert rbg.spec.role_names == ["router", "prefill", "decode"]

    router, prefill, decode = rbg.spec.roles
    assert router.workload.key == "apps/v1/Deployment"
    assert router.dependencies == ["prefill", "decode"]
    assert router.service_ports[0].target_port == "http"
    assert prefill.workload.key == "apps/v1/StatefulSet"  # defaulted
    assert prefill.service_ports[1].name == "bootstrap-port"
    assert prefill.rollout_strategy.rolling_update.max_unavailable == "50%"
    assert prefill.rollout_strategy.rolling_update.max_surge == 1
    assert decode.effective_restart_policy == "RecreateRBGOnPodRestart"
    assert decode.scaling_adapter_enabled and not router.scaling_adapter_enabled

    coordination = rbg.spec.coordination[0]
    assert coordination.strategy is not None
    assert coordination.strategy.rolling_update is not None
    assert coordination.strategy.rolling_update.max_skew == "10%"
    assert coordination.strategy.scaling is not None
    assert coordination.strategy.scaling.max_skew == 5  # (ext) integers accepted
    assert coordination.strategy.scaling.progression == "OrderScheduled"
    assert rbg.spec.pod_group_policy is not None
    assert rbg.spec.pod_group_policy.kube_scheduling is not None
    assert rbg.spec.pod_group_policy.kube_scheduling.schedule_timeout_seconds == 60

    data = dump(rbg)
    router_data = data["spec"]["roles"][0]
    assert router_data["rolloutStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": ROLLING_UPDATE_DEFAULTS,
    }
    assert router_data["minReadySeconds"] == 0
    assert router_data["servicePorts"][0]["protocol"] == "TCP"
    assert data["spec"]["roles"][1]["workload"] == {"apiVersion": "apps/v1", "kind": "StatefulSet"}
    assert data["spec"]["roles"][2]["scalingAdapter"] == {"enable": True}
    assert "status" not in data


def test_role_defaults_match_api_md() -> None:
    role = RoleSpec.model_validate({"name": "worker", "template": {}})
    assert role.replicas == 1
    assert role.workload.key == "apps/v1/StatefulSet"
    assert role.rollout_strategy.type == "RollingUpdate"
    update = role.rollout_strategy.rolling_update
    assert (update.max_unavailable, update.max_surge, update.partition) == (1, 0, 0)
    assert role.min_ready_seconds == 0
    assert role.effective_restart_policy == "None"
    config = role.effective_restart_policy_config
    assert (config.base_delay_seconds, config.max_delay_seconds, config.max_restarts) == (30, 600, None)
    assert role.scaling_adapter is None and not role.scaling_adapter_enabled
    assert role.pods_per_instance == 1
    # Only what api.md defaults shows up in a dump: no empty lists or maps, no nulls.
    assert dump(role) == {
        "name": "worker",
        "replicas": 1,
        "workload": {"apiVersion": "apps/v1", "kind": "StatefulSet"},
        "template": {},
        "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdate": ROLLING_UPDATE_DEFAULTS},
        "minReadySeconds": 0,
    }


LWS = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"}


@pytest.mark.parametrize(
    ("workload", "legacy", "config_type", "expected"),
    [
        # The reference's precedence: restartPolicyConfig.type, then restartPolicy, then the default.
        (None, None, None, "None"),
        (LWS, None, None, "RecreateRoleInstanceOnPodRestart"),
        (LWS, "None", None, "None"),
        (LWS, "None", "RecreateRBGOnPodRestart", "RecreateRBGOnPodRestart"),
        (None, "RecreateRBGOnPodRestart", "None", "None"),
        (None, None, "RecreateRoleInstanceOnPodRestart", "RecreateRoleInstanceOnPodRestart"),
    ],
)
def test_restart_policy_config_type_wins(
    workload: dict[str, str] | None, legacy: str | None, config_type: str | None, expected: str
) -> None:
    role: dict[str, Any] = {"name": "r", "template": {}}
    if workload is not None:
        role["workload"] = workload
    if legacy is not None:
        role["restartPolicy"] = legacy
    # A config without a type (backoff only) leaves the policy to restartPolicy and the default.
    role["restartPolicyConfig"] = {"maxRestarts": 2} if config_type is None else {"type": config_type}
    assert RoleSpec.model_validate(role).effective_restart_policy == expected


def test_lws_manifest() -> None:
    rbg = RoleBasedGroup.model_validate(load(LWS_MANIFEST))
    prefill, decode = rbg.spec.roles
    assert prefill.is_leader_worker_set and prefill.pods_per_instance == 2
    assert prefill.leader_worker_set is not None
    assert prefill.leader_worker_set.patch_leader_template == {"metadata": {"labels": {"leader": "true"}}}
    assert decode.leader_worker_set is not None and decode.leader_worker_set.size == 1  # defaulted
    assert decode.effective_restart_policy == "RecreateRoleInstanceOnPodRestart"
    assert decode.effective_restart_policy_config.max_restarts == 5
    assert decode.effective_restart_policy_config.base_delay_seconds == 30
    assert decode.template_patch == {}
    assert decode.engine_runtimes[0].inject_containers == ["sglang"]
    assert rbg.spec.role_template("sglang").template["spec"]["containers"][0]["name"] == "sglang"
    assert rbg.spec.rollout_order == ["decode", "prefill"]
    assert rbg.spec.placement is not None
    assert (rbg.spec.placement.policy, rbg.spec.placement.level) == ("Required", "rdma")
    assert rbg.spec.placement.pairs == [["prefill", "decode"]]
    assert rbg.spec.placement.exclusive is False
    with pytest.raises(KeyError):
        rbg.spec.role("router")


def test_rbgs_and_rbgsa() -> None:
    rbgs = RoleBasedGroupSet.model_validate(load(RBGS_MANIFEST))
    assert rbgs.spec.replicas == 3
    assert rbgs.spec.template.roles[0].name == "worker"
    assert rbgs.status is not None and rbgs.status.ready_replicas == 2
    assert rbgs.status.conditions[0].status == "False"
    assert (
        RoleBasedGroupSet.model_validate({"spec": {"template": {"roles": [{"name": "a"}]}}}).spec.replicas
        == 1
    )

    rbgsa = RoleBasedGroupScalingAdapter.model_validate(load(RBGSA_MANIFEST))
    assert rbgsa.spec.scale_target_ref.role == "decode"
    assert rbgsa.status is not None and rbgsa.status.phase == "Bound"
    assert rbgsa.status.last_scale_time == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert rbgsa.metadata.owner_references[0]["name"] == "sglang-pd"
    unbound = RoleBasedGroupScalingAdapter.model_validate(
        {"spec": {"scaleTargetRef": {"name": "g", "role": "r"}}}
    )
    assert unbound.spec.replicas is None


def test_rbg_status_round_trip() -> None:
    status = {
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "AllRolesReady",
                "message": "",
                "lastTransitionTime": "2025-06-01T10:00:00Z",
                "observedGeneration": 3,
            },
            {
                "type": "InvalidSpec",
                "status": "False",
                "reason": "Valid",
                "message": "",
                "lastTransitionTime": "2025-06-01T09:00:00Z",
            },
        ],
        "roleStatuses": [{"name": "prefill", "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2}],
        "currentRevision": "sglang-pd-6d4f8b7c9",
        "updateRevision": "sglang-pd-7f5c8d6b4",
        "phase": "Upgrading",
        "placement": {
            "policy": "Preferred",
            "level": "nvlink",
            "tier": "rdma",
            "score": 0.75,
            "domains": {"prefill": "block-a", "decode": "block-a"},
            "candidates": [{"domain": "block-b", "score": 0.5}],  # free-form beyond the typed fields
        },
        "workflowId": "rbg.inference.sglang-pd",
    }
    manifest = {**load(PD_MANIFEST), "status": status}
    rbg = RoleBasedGroup.model_validate(manifest)
    assert rbg.status is not None
    ready = rbg.status.condition("Ready")
    assert ready is not None and ready.last_transition_time == datetime(2025, 6, 1, 10, tzinfo=UTC)
    assert rbg.status.condition("Progressing") is None
    assert rbg.status.placement is not None and rbg.status.placement.domains["prefill"] == "block-a"
    assert dump(rbg)["status"] == status
    assert dump(RoleBasedGroup.model_validate(dump(rbg))) == dump(rbg)


def test_condition_time_is_written_as_kubernetes_does() -> None:
    plus_two = timezone(timedelta(hours=2))
    condition = Condition(
        type="Ready",
        status="True",
        reason="AllRolesReady",
        last_transition_time=datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=plus_two),
    )
    assert dump(condition)["lastTransitionTime"] == "2025-06-01T10:00:00Z"
    naive = condition.model_copy(update={"last_transition_time": datetime(2025, 6, 1, 10)})
    assert dump(naive)["lastTransitionTime"] == "2025-06-01T10:00:00Z"
    with pytest.raises(ValidationError):
        Condition.model_validate({**dump(condition), "status": "Maybe"})
    with pytest.raises(ValidationError):
        Condition.model_validate({**dump(condition), "reason": "not a reason"})


def test_python_names_and_explicit_empties() -> None:
    role = RoleSpec(name="a", template={}, dependencies=[], min_ready_seconds=5)
    data = dump(role)
    assert data["minReadySeconds"] == 5
    assert data["dependencies"] == []  # given explicitly, so kept
    assert "labels" not in data
    role.labels["team"] = "x"  # a defaulted collection that code filled in is dumped
    assert dump(role)["labels"] == {"team": "x"}
    assert role.model_dump(by_alias=False, exclude_none=True)["min_ready_seconds"] == 5


def test_metadata_keeps_unmodelled_fields() -> None:
    manifest = load(PD_MANIFEST)
    manifest["metadata"]["managedFields"] = [{"manager": "kubectl", "operation": "Apply"}]
    manifest["metadata"]["resourceVersion"] = "42"
    rbg = RoleBasedGroup.model_validate(manifest)
    assert rbg.metadata.resource_version == "42"
    assert dump(rbg)["metadata"]["managedFields"] == manifest["metadata"]["managedFields"]


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda m: m["spec"]["roles"][1].update(replicaz=3), "spec.roles[1].replicaz"),
        (lambda m: m["spec"].update(rolez=[]), "spec.rolez"),
        (lambda m: m["spec"]["roles"][1].update(replicas=-1), "spec.roles[1].replicas"),
        (lambda m: m["spec"]["roles"][2].update(name="Decode_"), "spec.roles[2].name"),
        (lambda m: m["spec"]["roles"][2].update(restartPolicy="Always"), "spec.roles[2].restartPolicy"),
        (lambda m: m["spec"].update(roles=[]), "spec.roles"),
        (
            lambda m: m["spec"]["roles"][1]["rolloutStrategy"]["rollingUpdate"].update(maxSurge="abc"),
            "spec.roles[1].rolloutStrategy.rollingUpdate.maxSurge",
        ),
        (
            lambda m: m["spec"]["roles"][1]["rolloutStrategy"]["rollingUpdate"].update(maxSurge=True),
            "spec.roles[1].rolloutStrategy.rollingUpdate.maxSurge",
        ),
        (
            lambda m: m["spec"]["roles"][1]["rolloutStrategy"]["rollingUpdate"].update(partition=-1),
            "spec.roles[1].rolloutStrategy.rollingUpdate.partition",
        ),
        (
            lambda m: m["spec"]["coordination"][0]["strategy"]["rollingUpdate"].update(maxSkew="150%"),
            "spec.coordination[0].strategy.rollingUpdate.maxSkew",
        ),
        (
            lambda m: m["spec"]["roles"][0]["servicePorts"][0].update(port=0),
            "spec.roles[0].servicePorts[0].port",
        ),
        (lambda m: m.update(kind="Deployment"), "kind"),
    ],
)
def test_schema_level_errors_are_refused_with_their_path(mutate: Any, path: str) -> None:
    manifest = load(PD_MANIFEST)
    mutate(manifest)
    with pytest.raises(ValidationError) as info:
        RoleBasedGroup.model_validate(manifest)
    assert [error.path for error in errors_from_validation_error(info.value)] == [path]
