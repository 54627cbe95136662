"""v1alpha1 <-> v1alpha2 conversion (rbg_flows.api.conversion): lossless both ways for every object the
CRD schemas admit, after the API server's defaulting; the reference's mappings; the v1alpha2 twin of
every example."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbg_flows.api import RoleBasedGroup, RoleBasedGroupScalingAdapter, RoleBasedGroupSet, parse_rbg, v1alpha2
from rbg_flows.api.common import KubeModel
from rbg_flows.api.conversion import (
    V1ALPHA1,
    V1ALPHA2,
    ConversionError,
    convert,
    to_internal,
)
from rbg_flows.api.crd import structural_schema
from rbg_flows.api.keys import (
    EXCLUSIVE_TOPOLOGY_ANNOTATION,
    GANG_SCHEDULING_ANNOTATION,
    GANG_SCHEDULING_TIMEOUT_ANNOTATION,
    GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION,
    GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION,
    GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION,
    ROLE_WORKLOAD_TYPE_ANNOTATION,
)
from rbg_flows.api.profile import ClusterEngineRuntimeProfile
from rbg_flows.api.rbg import DEPLOYMENT, LEADERWORKERSET, ROLEINSTANCESET, STATEFULSET
from tests.unit.test_api_crd import apply_defaults

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# 120 examples per property in the suite (about 15 s in all); RBG_CONVERSION_EXAMPLES=2000 for a deep run.
PROPERTY = settings(
    max_examples=int(os.environ.get("RBG_CONVERSION_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

MODELS: dict[tuple[str, str], type[KubeModel]] = {
    ("RoleBasedGroup", V1ALPHA1): RoleBasedGroup,
    ("RoleBasedGroup", V1ALPHA2): v1alpha2.RoleBasedGroup,
    ("RoleBasedGroupSet", V1ALPHA1): RoleBasedGroupSet,
    ("RoleBasedGroupSet", V1ALPHA2): v1alpha2.RoleBasedGroupSet,
    ("RoleBasedGroupScalingAdapter", V1ALPHA1): RoleBasedGroupScalingAdapter,
    ("RoleBasedGroupScalingAdapter", V1ALPHA2): v1alpha2.RoleBasedGroupScalingAdapter,
    ("ClusterEngineRuntimeProfile", V1ALPHA1): ClusterEngineRuntimeProfile,
    ("ClusterEngineRuntimeProfile", V1ALPHA2): ClusterEngineRuntimeProfile,
}
SCHEMAS = {key: structural_schema(model) for key, model in MODELS.items()}


def pruned(schema: dict[str, Any], value: Any, path: str = "") -> Iterator[str]:
    """Fields the API server would drop without a word: not in a structural schema that does not
    preserve unknown fields."""
    if isinstance(value, dict) and schema.get("type") == "object":
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        for name, item in value.items():
            if name in properties:
                yield from pruned(properties[name], item, f"{path}.{name}")
            elif isinstance(additional, dict):
                yield from pruned(additional, item, f"{path}.{name}")
            elif path != ".metadata":
                yield f"{path}.{name}"
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            yield from pruned(schema["items"], item, f"{path}[{i}]")


def admitted(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` as the API server stores it: checked against its version's CRD schema (types, enums,
    patterns, nothing pruned) and the model, then defaulted."""
    key = (obj["kind"], obj["apiVersion"])
    schema = SCHEMAS[key]
    jsonschema.Draft7Validator(schema).validate(obj)
    assert list(pruned(schema, obj)) == []
    MODELS[key].model_validate(obj)
    return apply_defaults(schema, copy.deepcopy(obj))  # type: ignore[no-any-return]


def round_trip(obj: dict[str, Any], there: str) -> dict[str, Any]:
    """Convert to `there` and back, checking the converted object is one the API server admits,
    already defaulted (the server does not default a conversion's output), and that `obj` is intact."""
    before = copy.deepcopy(obj)
    converted = convert(obj, there)
    assert obj == before, "convert changed its input"
    assert admitted(converted) == converted
    back = convert(converted, obj["apiVersion"])
    assert admitted(back) == back
    return back


# --- strategies of admitted objects -------------------------------------------------------------

ROLE_NAMES = ("prefill", "decode", "router")
TEMPLATE_NAMES = ("base", "engine")
words = st.sampled_from(["", "a", "x-1", "60", "true", "false", "abc", "q1"])
user_keys = st.sampled_from(["example.com/a", "team", "app.kubernetes.io/name"])
string_maps = st.dictionaries(user_keys, words, max_size=2)

json_scalars = st.none() | st.booleans() | st.integers(-3, 3) | words
free_keys = st.sampled_from(["spec", "metadata", "containers", "name", "image", "args", "x-unknown"])
free_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(free_keys, inner, max_size=3),
    max_leaves=6,
)
free_objects = st.dictionaries(free_keys, free_values, max_size=3)
"""Pod templates, patches, containers: any JSON, unknown fields and nulls included."""

percent_or_int = st.integers(0, 4) | st.sampled_from(["0%", "25%", "100%", "150%"])
percent_upto_100 = st.integers(0, 4) | st.sampled_from(["0%", "50%", "100%"])
restart_policies = st.sampled_from(["None", "RecreateRBGOnPodRestart", "RecreateRoleInstanceOnPodRestart"])
restart_configs = st.fixed_dictionaries(
    {},
    optional={
        "type": restart_policies,
        "baseDelaySeconds": st.integers(0, 60),
        "maxDelaySeconds": st.integers(0, 900),
        "maxRestarts": st.integers(0, 5),
    },
)
restart_fields: dict[str, st.SearchStrategy[Any]] = {
    "restartPolicy": restart_policies,
    "restartPolicyConfig": restart_configs,
}
rollout_strategies = st.fixed_dictionaries(
    {},
    optional={
        "type": st.just("RollingUpdate"),
        "rollingUpdate": st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["Recreate", "RecreatePod", "InPlaceIfPossible", "InPlaceOnly"]),
                "partition": percent_or_int,
                "maxUnavailable": percent_or_int,
                "maxSurge": percent_or_int,
                "paused": st.booleans(),
                "inPlaceUpdateStrategy": st.fixed_dictionaries(
                    {}, optional={"gracePeriodSeconds": st.integers(0, 30)}
                ),
            },
        ),
    },
)
service_ports = st.fixed_dictionaries(
    {"port": st.integers(1, 65535)},
    optional={
        "name": st.sampled_from(["http", "grpc-api"]),
        "targetPort": st.integers(1, 9000) | st.just("http"),
        "protocol": st.sampled_from(["TCP", "UDP"]),
        "appProtocol": st.just("h2c"),
        "nodePort": st.integers(0, 32767),
    },
)
engine_runtimes = st.fixed_dictionaries(
    {"profileName": st.sampled_from(["patio", "sidecar"])},
    optional={
        "injectContainers": st.lists(st.sampled_from(["engine", "main"]), max_size=2),
        "containers": st.lists(free_objects, max_size=2),
    },
)
scaling_adapters = st.fixed_dictionaries({}, optional={"enable": st.booleans(), "labels": string_maps})
components: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"name": st.sampled_from(["leader", "worker"]), "template": free_objects},
    optional={
        "size": st.integers(0, 3),
        "serviceName": st.just("svc"),
        "labels": string_maps,
        "annotations": string_maps,
    },
)
workload_types = st.sampled_from(
    [STATEFULSET, DEPLOYMENT, LEADERWORKERSET, ROLEINSTANCESET, "apps/v1/DaemonSet", "garbage", "/x", "a/"]
)
role_annotations = st.dictionaries(
    st.sampled_from([ROLE_WORKLOAD_TYPE_ANNOTATION, "example.com/a", "example.com/b"]),
    workload_types | words,
    max_size=3,
)
template_refs = st.fixed_dictionaries({"name": st.sampled_from(TEMPLATE_NAMES)})
common_role_fields: dict[str, Any] = {
    "labels": string_maps,
    "annotations": role_annotations,
    "replicas": st.integers(0, 5),
    "rolloutStrategy": rollout_strategies,
    "dependencies": st.lists(st.sampled_from(ROLE_NAMES), max_size=2, unique=True),
    "servicePorts": st.lists(service_ports, max_size=2),
    "engineRuntimes": st.lists(engine_runtimes, max_size=2),
    "scalingAdapter": scaling_adapters,
    "minReadySeconds": st.integers(0, 30),
    "podManagementPolicy": st.sampled_from(["OrderedReady", "Parallel"]),
}


def v1_role(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.just(name)},
        optional={
            **common_role_fields,
            "workload": st.sampled_from(
                [
                    {"apiVersion": "apps/v1", "kind": "StatefulSet"},
                    {"apiVersion": "apps/v1", "kind": "Deployment"},
                    {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
                    {"apiVersion": "workloads.x-k8s.io/v1alpha2", "kind": "RoleInstanceSet"},
                    {"kind": "Deployment"},
                    {"apiVersion": "", "kind": "odd"},
                    {},
                ]
            ),
            "template": free_objects,
            "templateRef": template_refs,
            "templatePatch": free_objects,
            "leaderWorkerSet": st.fixed_dictionaries(
                {},
                optional={
                    "size": st.integers(1, 4),
                    "patchLeaderTemplate": free_objects,
                    "patchWorkerTemplate": free_objects,
                    "sharedServiceSelection": st.sampled_from(["All", "LeaderOnly"]),
                },
            ),
            "components": st.lists(components, max_size=2, unique_by=lambda c: c["name"]),
            **restart_fields,
        },
    )


template_source = {
    "template": free_objects,
    "templateRef": template_refs.flatmap(
        lambda ref: st.fixed_dictionaries({"name": st.just(ref["name"])}, optional={"patch": free_objects})
    ),
}
standalone_patterns = st.fixed_dictionaries({}, optional={**template_source, **restart_fields})
leader_worker_patterns = st.fixed_dictionaries(
    {},
    optional={
        "size": st.integers(1, 4),
        **template_source,
        "leaderTemplatePatch": free_objects,
        "workerTemplatePatch": free_objects,
        "sharedServiceSelection": st.sampled_from(["All", "LeaderOnly"]),
        **restart_fields,
    },
)
custom_components_patterns = st.fixed_dictionaries(
    {},
    optional={
        "components": st.lists(components, max_size=2, unique_by=lambda c: c["name"]),
        **restart_fields,
    },
)


def v2_role(name: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"name": st.just(name)},
        optional={
            **common_role_fields,
            "standalonePattern": standalone_patterns,
            "leaderWorkerPattern": leader_worker_patterns,
            "customComponentsPattern": custom_components_patterns,
        },
    ).filter(lambda role: not ("standalonePattern" in role and "leaderWorkerPattern" in role))  # CEL rule


def roles(role: Any) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(st.sampled_from(ROLE_NAMES), min_size=1, max_size=3, unique=True).flatmap(
        lambda names: st.tuples(*(role(name) for name in names)).map(list)
    )


role_templates = st.lists(st.sampled_from(TEMPLATE_NAMES), max_size=2, unique=True).map(
    lambda names: [{"name": name, "template": {"spec": {"containers": [{"name": "main"}]}}} for name in names]
)
pod_group_policies = st.fixed_dictionaries(
    {},
    optional={
        "kubeScheduling": st.fixed_dictionaries({}, optional={"scheduleTimeoutSeconds": st.integers(0, 300)}),
        "volcanoScheduling": st.fixed_dictionaries(
            {},
            optional={
                "queue": st.sampled_from(["", "q1"]),
                "priorityClassName": st.sampled_from(["", "high"]),
            },
        ),
    },
)
coordination = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["pd", "all"]),
            "roles": st.lists(st.sampled_from(ROLE_NAMES), min_size=1, max_size=3, unique=True),
        },
        optional={
            "strategy": st.fixed_dictionaries(
                {},
                optional={
                    "rollingUpdate": st.fixed_dictionaries(
                        {},
                        optional={
                            "maxSkew": percent_upto_100,
                            "partition": percent_upto_100,
                            "maxUnavailable": percent_upto_100,
                        },
                    ),
                    "scaling": st.fixed_dictionaries(
                        {},
                        optional={
                            "maxSkew": percent_upto_100,
                            "progression": st.sampled_from(["OrderScheduled", "OrderReady"]),
                        },
                    ),
                },
            )
        },
    ),
    max_size=2,
    unique_by=lambda rule: str(rule["name"]),
)
placements = st.fixed_dictionaries(
    {},
    optional={
        "policy": st.sampled_from(["None", "Preferred", "Required"]),
        "level": st.sampled_from(["nvlink", "pcie", "rdma", "zone"]),
        "pairs": st.lists(st.lists(st.sampled_from(ROLE_NAMES), min_size=2, max_size=2), max_size=2),
        "exclusive": st.booleans(),
    },
)
group_fields: dict[str, Any] = {
    "roleTemplates": role_templates,
    "coordination": coordination,
    "rolloutOrder": st.lists(st.sampled_from(ROLE_NAMES), max_size=3, unique=True),
    "placement": placements,
}
v1_specs = st.fixed_dictionaries(
    {"roles": roles(v1_role)}, optional={**group_fields, "podGroupPolicy": pod_group_policies}
)
v2_specs = st.fixed_dictionaries({"roles": roles(v2_role)}, optional=group_fields)

conditions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["Ready", "Progressing", "InvalidSpec"]),
            "status": st.sampled_from(["True", "False", "Unknown"]),
            "reason": st.sampled_from(["AllRolesReady", "RoleNotReady"]),
            "lastTransitionTime": st.just("2025-01-01T00:00:00Z"),
        },
        optional={"message": words, "observedGeneration": st.integers(0, 9)},
    ),
    max_size=2,
    unique_by=lambda condition: condition["type"],
)
rbg_statuses = st.fixed_dictionaries(
    {},
    optional={
        "observedGeneration": st.integers(0, 9),
        "conditions": conditions,
        "roleStatuses": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(ROLE_NAMES)},
                optional={
                    "replicas": st.integers(0, 3),
                    "readyReplicas": st.integers(0, 3),
                    "updatedReplicas": st.integers(0, 3),
                },
            ),
            max_size=3,
            unique_by=lambda status: status["name"],
        ),
        "currentRevision": st.just("g-abc"),
        "updateRevision": st.just("g-def"),
        "phase": st.sampled_from(["Pending", "Ready", "Upgrading", "Failed"]),
        "placement": st.fixed_dictionaries(
            {},
            optional={
                "tier": st.sampled_from(["nvlink", "none"]),
                "score": st.floats(0, 10, allow_nan=False),
                "domains": st.dictionaries(st.sampled_from(ROLE_NAMES), words, max_size=2),
                "futureField": free_values,
            },
        ),
        "workflowId": st.just("rbg/ns/g"),
    },
)
group_annotation_keys = st.sampled_from(
    [
        GANG_SCHEDULING_ANNOTATION,
        GANG_SCHEDULING_TIMEOUT_ANNOTATION,
        GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION,
        GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION,
        EXCLUSIVE_TOPOLOGY_ANNOTATION,
        GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION,
        # Someone else's annotation under the conversion prefix (the reference's) passes through.
        "conversion.workloads.x-k8s.io/v1alpha1-coordination",
        "example.com/note",
    ]
)
group_annotation_values = st.sampled_from(
    ["true", "false", "60", "120", "060", "abc", "q1", "", "kubernetes.io/hostname"]
)
metadata = st.fixed_dictionaries(
    {"name": st.just("g")},
    optional={
        "namespace": st.just("ns"),
        "uid": st.just("0f0e"),
        "resourceVersion": st.just("42"),
        "generation": st.integers(1, 5),
        "labels": string_maps,
        # ObjectMeta drops an empty map: the API server never stores `annotations: {}`.
        "annotations": st.dictionaries(
            group_annotation_keys, group_annotation_values, min_size=1, max_size=4
        ),
    },
)


def top(kind: str, api_version: str, spec: Any, status: Any) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"apiVersion": st.just(api_version), "kind": st.just(kind), "metadata": metadata, "spec": spec},
        optional={"status": status},
    )


v1_rbgs = top("RoleBasedGroup", V1ALPHA1, v1_specs, rbg_statuses)
v2_rbgs = top("RoleBasedGroup", V1ALPHA2, v2_specs, rbg_statuses)
set_statuses = st.fixed_dictionaries(
    {},
    optional={
        "observedGeneration": st.integers(0, 9),
        "replicas": st.integers(0, 3),
        "readyReplicas": st.integers(0, 3),
        "conditions": conditions,
    },
)
v1_sets = top(
    "RoleBasedGroupSet",
    V1ALPHA1,
    st.fixed_dictionaries({"template": v1_specs}, optional={"replicas": st.integers(0, 4)}),
    set_statuses,
)
group_templates = st.fixed_dictionaries(
    {"spec": v2_specs},
    optional={
        "labels": string_maps,
        "annotations": st.dictionaries(group_annotation_keys, group_annotation_values, max_size=4),
    },
)
v2_sets = top(
    "RoleBasedGroupSet",
    V1ALPHA2,
    st.fixed_dictionaries({"groupTemplate": group_templates}, optional={"replicas": st.integers(0, 4)}),
    set_statuses,
)


def kept(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        key: json.loads(value)
        for key, value in obj["metadata"].get("annotations", {}).items()
        if key.startswith("conversion.workloads.x-k8s.io/v1alpha")
    }


# --- properties ---------------------------------------------------------------------------------


@PROPERTY
@given(v1_rbgs)
def test_rbg_v1alpha1_round_trip(obj: dict[str, Any]) -> None:
    stored = admitted(obj)
    assert round_trip(stored, V1ALPHA2) == stored
    # The orchestrator's form is the v1alpha1 one, from either version.
    assert to_internal(convert(stored, V1ALPHA2)) == stored


@PROPERTY
@given(v2_rbgs)
def test_rbg_v1alpha2_round_trip(obj: dict[str, Any]) -> None:
    stored = admitted(obj)
    assert round_trip(stored, V1ALPHA1) == stored
    internal = to_internal(stored)
    RoleBasedGroup.model_validate(internal)
    assert to_internal(internal) == internal


@PROPERTY
@given(v1_sets)
def test_rbgs_v1alpha1_round_trip(obj: dict[str, Any]) -> None:
    stored = admitted(obj)
    assert round_trip(stored, V1ALPHA2) == stored


@PROPERTY
@given(v2_sets)
def test_rbgs_v1alpha2_round_trip(obj: dict[str, Any]) -> None:
    stored = admitted(obj)
    assert round_trip(stored, V1ALPHA1) == stored


@PROPERTY
@given(v1_rbgs, v1_rbgs)
def test_an_edit_in_the_other_version_wins_over_a_kept_copy(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    # A v1alpha2 object read in v1alpha1, its spec replaced there and written back: the v1alpha2
    # object says what the new v1alpha1 spec says, whatever copies the first conversion kept.
    stored = convert(admitted(first), V1ALPHA2)
    read = convert(stored, V1ALPHA1)
    edited = admitted({**read, "spec": second["spec"]})
    written = convert(edited, V1ALPHA2)
    assert convert(written, V1ALPHA1) == edited


# Objects every field of which the other version has a place for: converting them keeps no copies. A
# lens that dropped or misplaced a field would still round-trip (through a kept copy), so this is what
# checks the mapping itself.
served_workloads = st.sampled_from(
    [
        {"apiVersion": "apps/v1", "kind": "StatefulSet"},
        {"apiVersion": "apps/v1", "kind": "Deployment"},
        {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
    ]
)
# (`annotations: {}` on a v1alpha1 role is kept: its v1alpha2 form always has the workload type.)
plain_role_annotations = st.dictionaries(
    st.sampled_from(["example.com/a", "example.com/b"]), words, min_size=1, max_size=2
)
plain_fields = {**common_role_fields, "annotations": plain_role_annotations}


def plain_v1_role(name: str) -> st.SearchStrategy[dict[str, Any]]:
    lws = st.fixed_dictionaries(
        {},
        optional={
            "size": st.integers(1, 4),
            "patchLeaderTemplate": free_objects,
            "patchWorkerTemplate": free_objects,
            "sharedServiceSelection": st.sampled_from(["All", "LeaderOnly"]),
        },
    )
    source = st.one_of(
        st.just({}),
        free_objects.map(lambda t: {"template": t}),
        st.tuples(template_refs, st.none() | free_objects).map(
            lambda rp: {"templateRef": rp[0], **({} if rp[1] is None else {"templatePatch": rp[1]})}
        ),
    )
    shape: st.SearchStrategy[dict[str, Any]] = st.one_of(
        st.just({}),
        lws.map(lambda value: {"leaderWorkerSet": value}),
        st.lists(components, max_size=2, unique_by=lambda c: c["name"]).map(
            lambda value: {"components": value}
        ),
    )
    return st.tuples(
        st.fixed_dictionaries(
            {"name": st.just(name), "workload": served_workloads}, optional={**plain_fields, **restart_fields}
        ),
        source,
        shape,
    ).map(lambda parts: {**parts[0], **parts[1], **parts[2]})


def plain_v2_role(name: str) -> st.SearchStrategy[dict[str, Any]]:
    pattern = st.one_of(
        standalone_patterns.map(lambda value: {"standalonePattern": value}),
        leader_worker_patterns.map(lambda value: {"leaderWorkerPattern": value}),
        # Components beside a template source: v1alpha1 has both flat.
        st.tuples(
            st.none()
            | st.one_of(
                free_objects.map(lambda t: {"template": t}),
                template_source["templateRef"].map(lambda r: {"templateRef": r}),
            ),
            st.fixed_dictionaries(
                {"components": st.lists(components, max_size=2, unique_by=lambda c: c["name"])},
                optional=restart_fields,
            ),
        ).map(
            lambda sc: {
                "customComponentsPattern": sc[1],
                **({} if sc[0] is None else {"standalonePattern": sc[0]}),
            }
        ),
    )
    return st.tuples(
        st.fixed_dictionaries({"name": st.just(name)}, optional=plain_fields),
        st.sampled_from([STATEFULSET, DEPLOYMENT, LEADERWORKERSET, ROLEINSTANCESET]),
        pattern,
    ).map(
        lambda parts: {
            **parts[0],
            "annotations": {**parts[0].get("annotations", {}), ROLE_WORKLOAD_TYPE_ANNOTATION: parts[1]},
            **parts[2],
        }
    )


plain_gang_v1 = st.one_of(
    st.integers(0, 300).map(lambda t: {"kubeScheduling": {"scheduleTimeoutSeconds": t}}),
    st.fixed_dictionaries({"queue": st.just("q1")}, optional={"priorityClassName": st.just("high")}).map(
        lambda v: {"volcanoScheduling": v}
    ),
)
plain_gang_v2 = st.one_of(
    st.integers(0, 300).map(
        lambda t: {GANG_SCHEDULING_ANNOTATION: "true", GANG_SCHEDULING_TIMEOUT_ANNOTATION: str(t)}
    ),
    st.just({GANG_SCHEDULING_ANNOTATION: "true", GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION: "q1"}),
    st.just({GANG_SCHEDULING_ANNOTATION: "true", GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION: "high"}),
)
plain_v1_rbgs = st.tuples(
    st.fixed_dictionaries(
        {"roles": roles(plain_v1_role)}, optional={**group_fields, "podGroupPolicy": plain_gang_v1}
    ),
    st.dictionaries(st.sampled_from([EXCLUSIVE_TOPOLOGY_ANNOTATION, "example.com/n"]), words, max_size=2),
    st.none() | rbg_statuses,
).map(
    lambda parts: {
        "apiVersion": V1ALPHA1,
        "kind": "RoleBasedGroup",
        "metadata": {"name": "g", **({"annotations": parts[1]} if parts[1] else {})},
        "spec": parts[0],
        **({} if parts[2] is None else {"status": parts[2]}),
    }
)
plain_v2_rbgs = st.tuples(
    st.fixed_dictionaries({"roles": roles(plain_v2_role)}, optional=group_fields),
    st.dictionaries(
        st.sampled_from([GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION, "example.com/n"]), words, max_size=2
    ),
    st.just({}) | plain_gang_v2,
    st.none() | rbg_statuses,
).map(
    lambda parts: {
        "apiVersion": V1ALPHA2,
        "kind": "RoleBasedGroup",
        "metadata": {
            "name": "g",
            **({"annotations": {**parts[1], **parts[2]}} if parts[1] or parts[2] else {}),
        },
        "spec": parts[0],
        **({} if parts[3] is None else {"status": parts[3]}),
    }
)


@PROPERTY
@given(plain_v1_rbgs)
def test_a_v1alpha1_group_needs_no_kept_copies(obj: dict[str, Any]) -> None:
    stored = admitted(obj)
    converted = convert(stored, V1ALPHA2)
    assert kept(converted) == {}
    assert convert(converted, V1ALPHA1) == stored


@PROPERTY
@given(plain_v2_rbgs)
def test_a_v1alpha2_group_with_workload_types_needs_no_kept_copies(obj: dict[str, Any]) -> None:
    stored = admitted(obj)
    converted = convert(stored, V1ALPHA1)
    assert kept(converted) == {}
    assert convert(converted, V1ALPHA2) == stored


# --- the reference's mappings, by example -------------------------------------------------------


STS = {"apiVersion": "apps/v1", "kind": "StatefulSet"}


def rbg_v1(roles: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    metadata = extra.pop("metadata", {"name": "g"})
    return {
        "apiVersion": V1ALPHA1,
        "kind": "RoleBasedGroup",
        "metadata": metadata,
        "spec": {"roles": roles, **extra},
    }


def rbg_v2(
    roles: list[dict[str, Any]], annotations: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "g"}
    if annotations:
        metadata["annotations"] = annotations
    return {
        "apiVersion": V1ALPHA2,
        "kind": "RoleBasedGroup",
        "metadata": metadata,
        "spec": {"roles": roles, **extra},
    }


def test_workload_becomes_the_role_annotation_and_the_template_a_pattern() -> None:
    lws = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"}
    up = convert(
        rbg_v1(
            [
                {
                    "name": "router",
                    "workload": {"apiVersion": "apps/v1", "kind": "Deployment"},
                    "template": {"a": 1},
                },
                {
                    "name": "decode",
                    "workload": lws,
                    "templateRef": {"name": "base"},
                    "templatePatch": {"p": 1},
                    "leaderWorkerSet": {
                        "size": 2,
                        "patchLeaderTemplate": {"l": 1},
                        "patchWorkerTemplate": {"w": 1},
                    },
                    "restartPolicy": "None",
                },
                {
                    "name": "prefill",
                    "workload": {"apiVersion": "apps/v1", "kind": "StatefulSet"},
                    "template": {},
                    "restartPolicyConfig": {"type": "RecreateRBGOnPodRestart"},
                },
            ]
        ),
        V1ALPHA2,
    )
    router, decode, prefill = up["spec"]["roles"]
    assert router == {
        "name": "router",
        "annotations": {ROLE_WORKLOAD_TYPE_ANNOTATION: DEPLOYMENT},
        "standalonePattern": {"template": {"a": 1}},
    }
    assert decode == {
        "name": "decode",
        "annotations": {ROLE_WORKLOAD_TYPE_ANNOTATION: LEADERWORKERSET},
        "leaderWorkerPattern": {
            "size": 2,
            "templateRef": {"name": "base", "patch": {"p": 1}},
            "leaderTemplatePatch": {"l": 1},
            "workerTemplatePatch": {"w": 1},
            "restartPolicy": "None",
        },
    }
    # (ext) a standalone role keeps its restart policy.
    assert prefill["standalonePattern"] == {
        "template": {},
        "restartPolicyConfig": {"type": "RecreateRBGOnPodRestart"},
    }
    assert kept(up) == {}


def test_a_v1alpha2_role_without_workload_type_is_a_statefulset_or_a_leaderworkerset() -> None:
    obj = rbg_v2(
        [
            {"name": "a", "standalonePattern": {"template": {}}},
            {"name": "b", "leaderWorkerPattern": {"size": 2, "template": {}}},
            {
                "name": "c",
                "annotations": {ROLE_WORKLOAD_TYPE_ANNOTATION: ROLEINSTANCESET},
                "standalonePattern": {},
            },
        ]
    )
    down = convert(obj, V1ALPHA1)
    a, b, c = down["spec"]["roles"]
    assert a["workload"] == {"apiVersion": "apps/v1", "kind": "StatefulSet"}
    assert b["workload"] == {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"}
    assert b["leaderWorkerSet"] == {"size": 2}
    # Not served: the orchestrator refuses it (InvalidSpec) instead of running something else.
    assert c["workload"] == {"apiVersion": "workloads.x-k8s.io/v1alpha2", "kind": "RoleInstanceSet"}
    assert "annotations" not in c
    # The annotation's absence is kept for the way back, on the object, not on the role (role
    # annotations reach the pods).
    assert kept(down) == {"conversion.workloads.x-k8s.io/v1alpha2-workload": {"a": {}, "b": {}}}
    assert convert(down, V1ALPHA2) == obj


def test_gang_scheduling_and_exclusive_topology_are_group_annotations() -> None:
    kube = convert(
        rbg_v1(
            [{"name": "a", "workload": STS}],
            metadata={"name": "g", "annotations": {EXCLUSIVE_TOPOLOGY_ANNOTATION: "kubernetes.io/hostname"}},
            podGroupPolicy={"kubeScheduling": {"scheduleTimeoutSeconds": 90}},
        ),
        V1ALPHA2,
    )
    assert kube["metadata"]["annotations"] == {
        GANG_SCHEDULING_ANNOTATION: "true",
        GANG_SCHEDULING_TIMEOUT_ANNOTATION: "90",
        GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION: "kubernetes.io/hostname",
    }
    assert "podGroupPolicy" not in kube["spec"]
    volcano = convert(
        rbg_v1(
            [{"name": "a", "workload": STS}],
            podGroupPolicy={"volcanoScheduling": {"queue": "q", "priorityClassName": "p"}},
        ),
        V1ALPHA2,
    )
    assert volcano["metadata"]["annotations"] == {
        GANG_SCHEDULING_ANNOTATION: "true",
        GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION: "q",
        GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION: "p",
    }
    # A v1alpha2 group asking for gang scheduling alone gets the scheduler-plugins default.
    down = convert(
        rbg_v2([{"name": "a", "standalonePattern": {}}], {GANG_SCHEDULING_ANNOTATION: "true"}), V1ALPHA1
    )
    assert down["spec"]["podGroupPolicy"] == {"kubeScheduling": {"scheduleTimeoutSeconds": 60}}


def test_v1alpha2_exclusive_topology_spelling_on_a_v1alpha1_object_stays_in_v1alpha2() -> None:
    obj = rbg_v1(
        [{"name": "a", "workload": STS}],
        metadata={"name": "g", "annotations": {GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION: "zone"}},
    )
    up = convert(obj, V1ALPHA2)
    assert up["metadata"]["annotations"][GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION] == "zone"
    assert kept(up) == {
        "conversion.workloads.x-k8s.io/v1alpha1-exclusive-topology": {
            GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION: "zone"
        }
    }
    assert convert(up, V1ALPHA1) == obj


def test_rbgs_group_template() -> None:
    obj = {
        "apiVersion": V1ALPHA1,
        "kind": "RoleBasedGroupSet",
        "metadata": {"name": "s"},
        "spec": {
            "replicas": 2,
            "template": {
                "roles": [{"name": "a", "workload": STS, "template": {}}],
                "podGroupPolicy": {"volcanoScheduling": {}},
            },
        },
    }
    up = convert(obj, V1ALPHA2)
    assert up["spec"] == {
        "replicas": 2,
        "groupTemplate": {
            "annotations": {GANG_SCHEDULING_ANNOTATION: "true"},
            "spec": {
                "roles": [
                    {
                        "name": "a",
                        "annotations": {ROLE_WORKLOAD_TYPE_ANNOTATION: STATEFULSET},
                        "standalonePattern": {"template": {}},
                    }
                ]
            },
        },
    }
    # volcanoScheduling without a queue or priority reads as scheduler-plugins in v1alpha2: kept.
    assert kept(up) == {
        "conversion.workloads.x-k8s.io/v1alpha1-group-template": {"podGroupPolicy": {"volcanoScheduling": {}}}
    }
    assert convert(up, V1ALPHA1) == obj


def test_scaling_adapter_and_profile_change_only_their_api_version() -> None:
    adapter = {
        "apiVersion": V1ALPHA1,
        "kind": "RoleBasedGroupScalingAdapter",
        "metadata": {"name": "g-a", "annotations": {GANG_SCHEDULING_ANNOTATION: "true"}},
        "spec": {"replicas": 3, "scaleTargetRef": {"name": "g", "role": "a"}},
        "status": {"phase": "Bound", "selector": "x=y"},
    }
    assert convert(adapter, V1ALPHA2) == {**adapter, "apiVersion": V1ALPHA2}
    profile = {
        "apiVersion": V1ALPHA2,
        "kind": "ClusterEngineRuntimeProfile",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "future": None}], "updateStrategy": "RollingUpdate"},
    }
    assert convert(profile, V1ALPHA1) == {**profile, "apiVersion": V1ALPHA1}


def test_a_kept_copy_that_does_not_parse_is_ignored() -> None:
    obj = rbg_v2(
        [{"name": "a", "annotations": {ROLE_WORKLOAD_TYPE_ANNOTATION: STATEFULSET}, "standalonePattern": {}}],
        {"conversion.workloads.x-k8s.io/v1alpha1-pattern": "{not json", "example.com/x": "1"},
    )
    down = convert(obj, V1ALPHA1)
    assert down["metadata"]["annotations"] == {"example.com/x": "1"}
    assert down["spec"]["roles"] == [
        {"name": "a", "workload": {"apiVersion": "apps/v1", "kind": "StatefulSet"}}
    ]


@pytest.mark.parametrize(
    "value",
    [
        '{"a": {"annotations": 5}}',
        '{"a": {"annotations": "ab"}}',
        '{"a": {"leaderWorkerPattern": {"templateRef": 1}}}',
        '{"a": {"standalonePattern": 5}}',
        '{"a": {"standalonePattern": {"template": {}, "bogus": 1}}}',
        '{"a": {"annotations": {"x": 1}}}',
        "[1]",
    ],
)
def test_a_kept_copy_of_another_shape_is_ignored(value: str) -> None:
    obj = rbg_v1([{"name": "a", "workload": STS, "template": {}}])
    for part in ("workload", "pattern"):
        edited = {
            **obj,
            "metadata": {
                "name": "g",
                "annotations": {f"conversion.workloads.x-k8s.io/v1alpha2-{part}": value},
            },
        }
        assert convert(edited, V1ALPHA2) == convert(obj, V1ALPHA2)


@pytest.mark.parametrize(
    ("obj", "to", "path"),
    [
        ([], V1ALPHA2, "<root>"),
        ({"apiVersion": V1ALPHA1, "kind": "RoleBasedGroup", "spec": {"roles": []}}, "v1", "<to>"),
        ({"apiVersion": "apps/v1", "kind": "RoleBasedGroup"}, V1ALPHA2, "apiVersion"),
        ({"apiVersion": V1ALPHA1, "kind": "Pod"}, V1ALPHA2, "kind"),
        ({"apiVersion": V1ALPHA1, "kind": "RoleBasedGroup", "spec": {"roles": {}}}, V1ALPHA2, "spec.roles"),
        (
            {"apiVersion": V1ALPHA1, "kind": "RoleBasedGroup", "spec": {"roles": [{}]}},
            V1ALPHA2,
            "spec.roles[0].name",
        ),
        (
            {"apiVersion": V1ALPHA2, "kind": "RoleBasedGroupSet", "spec": {"groupTemplate": 1}},
            V1ALPHA1,
            "spec.groupTemplate",
        ),
    ],
)
def test_input_no_crd_admits_is_refused_with_its_path(obj: Any, to: str, path: str) -> None:
    with pytest.raises(ConversionError) as caught:
        convert(obj, to)
    assert caught.value.path == path


def test_parse_rbg_takes_either_version() -> None:
    v2 = rbg_v2([{"name": "a", "standalonePattern": {"template": {"spec": {"containers": [{"name": "c"}]}}}}])
    rbg, errors = parse_rbg(v2)
    assert errors == [] and rbg is not None
    assert rbg.api_version == V1ALPHA1 and rbg.spec.roles[0].workload.key == STATEFULSET


# --- the v1alpha2 twin of every example ---------------------------------------------------------


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_has_its_v1alpha2_twin(name: str) -> None:
    originals = documents(EXAMPLES / name)
    twins = documents(EXAMPLES / "v1alpha2" / name)
    assert [(d["kind"], d["apiVersion"]) for d in twins] == [(d["kind"], V1ALPHA2) for d in originals]
    for original, twin in zip(originals, twins, strict=True):
        v1, v2 = admitted(original), admitted(twin)
        assert convert(v1, V1ALPHA2) == v2
        assert convert(v2, V1ALPHA1) == v1
