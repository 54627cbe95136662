"""The generated CRDs: committed files are current, schemas are structural, and the API server's
defaulting (as the schema states it) gives the same object as the models' defaults."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.api import KubeModel, RoleBasedGroup, RoleBasedGroupScalingAdapter, RoleBasedGroupSet
from rbg_flows.api import crd as crd_module
from rbg_flows.api.crd import (
    KINDS,
    KUSTOMIZATION_FILE,
    crd_manifest,
    main,
    render_files,
    stale_files,
    structural_schema,
    write_crds,
)

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "deploy" / "crds"

SAMPLES: dict[str, dict[str, Any]] = {
    "RoleBasedGroup": {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "pd"},
        "spec": {
            "podGroupPolicy": {"kubeScheduling": {}},
            "coordination": [{"name": "pd", "roles": ["prefill", "decode"], "strategy": {"scaling": {}}}],
            "placement": {"pairs": [["prefill", "decode"]]},
            "roles": [
                {
                    "name": "router",
                    "workload": {"kind": "Deployment"},
                    "dependencies": ["prefill", "decode"],
                    "servicePorts": [{"name": "http", "port": 8000}],
                    "template": {"spec": {"containers": [{"name": "r", "image": "router"}]}},
                },
                {
                    "name": "prefill",
                    "replicas": 2,
                    "rolloutStrategy": {"rollingUpdate": {"maxSurge": "25%"}},
                    "restartPolicyConfig": {},
                    "scalingAdapter": {},
                    "template": {"spec": {"containers": [{"name": "p", "image": "engine"}]}},
                },
                {
                    "name": "decode",
                    "workload": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
                    "leaderWorkerSet": {},
                    "template": {"spec": {"containers": [{"name": "d", "image": "engine"}]}},
                },
            ],
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "AllRolesReady",
                    "lastTransitionTime": "2025-01-01T00:00:00Z",
                }
            ],
            "roleStatuses": [{"name": "router"}],
        },
    },
    "RoleBasedGroupSet": {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroupSet",
        "metadata": {"name": "set"},
        "spec": {"template": {"roles": [{"name": "worker", "template": {}}]}},
        "status": {},
    },
    "RoleBasedGroupScalingAdapter": {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroupScalingAdapter",
        "metadata": {"name": "pd-decode"},
        "spec": {"scaleTargetRef": {"name": "pd", "role": "decode"}},
    },
}
MODELS: dict[str, type[KubeModel]] = {
    "RoleBasedGroup": RoleBasedGroup,
    "RoleBasedGroupSet": RoleBasedGroupSet,
    "RoleBasedGroupScalingAdapter": RoleBasedGroupScalingAdapter,
}


def schema_of(kind: str) -> dict[str, Any]:
    for crd_kind in KINDS:
        if crd_kind.kind == kind:
            schema: dict[str, Any] = crd_manifest(crd_kind)["spec"]["versions"][0]["schema"][
                "openAPIV3Schema"
            ]
            return schema
    raise KeyError(kind)


def nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from nodes(sub, f"{path}.{name}")
    if "items" in schema:
        yield from nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from nodes(schema["additionalProperties"], f"{path}{{}}")


def at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    for found, node in nodes(schema):
        if found == path:
            return node
    raise KeyError(path)


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it: fill a missing property with its default,
    then keep descending (into defaulted values too)."""
    if isinstance(value, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, item in value.items():
            if name in schema.get("properties", {}):
                apply_defaults(schema["properties"][name], item)
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(schema["additionalProperties"], item)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            apply_defaults(schema["items"], item)
    return value


def test_committed_crds_match_the_models() -> None:
    stale = stale_files(CRD_DIR)
    assert not stale, (
        f"deploy/crds is out of date ({', '.join(stale)}): run `python -m rbg_flows.api.crd deploy/crds`"
    )


def test_committed_directory_has_nothing_else() -> None:
    assert sorted(path.name for path in CRD_DIR.iterdir()) == sorted(render_files())


def test_write_and_check(tmp_path: Path) -> None:
    assert main([str(tmp_path), "--check"]) == 1
    written = write_crds(tmp_path)
    assert sorted(path.name for path in written) == sorted(render_files())
    assert main([str(tmp_path), "--check"]) == 0
    (tmp_path / "workloads.x-k8s.io_rolebasedgroups.yaml").write_text("# hand edited\n")
    assert main([str(tmp_path), "--check"]) == 1


def test_kustomization_lists_every_crd() -> None:
    kustomization = yaml.safe_load(render_files()[KUSTOMIZATION_FILE])
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"] == [kind.file_name for kind in KINDS]
    # kubectl apply -f deploy/crds/ only reads *.yaml/*.yml/*.json: the kustomization must not match.
    assert not KUSTOMIZATION_FILE.endswith((".yaml", ".yml", ".json"))


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_schema_is_structural(kind: str) -> None:
    for path, node in nodes(schema_of(kind)):
        assert "$ref" not in node and "$defs" not in node, path
        assert "nullable" not in node and "title" not in node and "const" not in node, path
        assert node.get("additionalProperties") is not False, path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "anyOf" not in node and "oneOf" not in node and "allOf" not in node, path
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}, path
        if node.get("type") == "array":
            assert "items" in node, path
        if "default" in node:
            assert not path.startswith(".metadata"), path
            expected_type = {"object": dict, "string": str, "integer": int, "boolean": bool, "array": list}
            if node.get("type") in expected_type:
                assert isinstance(node["default"], expected_type[node["type"]]), path
            if "enum" in node:
                assert node["default"] in node["enum"], path
        if node.get("x-kubernetes-list-type") == "map":
            items = node["items"]
            assert items["type"] == "object", path
            for key in node["x-kubernetes-list-map-keys"]:
                assert key in items.get("required", []) or "default" in items["properties"][key], path


def test_rbg_schema_details() -> None:
    schema = schema_of("RoleBasedGroup")
    assert schema["required"] == ["spec"]
    assert at(schema, ".metadata") == {"type": "object"}

    roles = at(schema, ".spec.roles")
    assert roles["minItems"] == 1
    assert roles["x-kubernetes-list-type"] == "map" and roles["x-kubernetes-list-map-keys"] == ["name"]
    assert at(schema, ".spec.roles[].name")["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert at(schema, ".spec.roles[].name")["maxLength"] == 63
    assert at(schema, ".spec.roles[]")["required"] == ["name"]
    assert at(schema, ".spec.roleTemplates")["x-kubernetes-list-map-keys"] == ["name"]
    assert at(schema, ".spec.coordination")["x-kubernetes-list-map-keys"] == ["name"]
    assert at(schema, ".spec.rolloutOrder")["x-kubernetes-list-type"] == "set"
    conditions = at(schema, ".status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map" and conditions["x-kubernetes-list-map-keys"] == [
        "type"
    ]
    assert at(schema, ".status.roleStatuses")["x-kubernetes-list-map-keys"] == ["name"]
    assert at(schema, ".status.phase")["enum"] == [
        "Pending",
        "Deploying",
        "Ready",
        "Upgrading",
        "Scaling",
        "Recovering",
        "Paused",
        "Degraded",
        "Failed",
    ]

    assert at(schema, ".spec.roles[].replicas") == {
        "description": at(schema, ".spec.roles[].replicas")["description"],
        "type": "integer",
        "default": 1,
        "minimum": 0,
    }
    assert at(schema, ".spec.roles[].restartPolicy")["enum"] == [
        "None",
        "RecreateRBGOnPodRestart",
        "RecreateRoleInstanceOnPodRestart",
    ]
    assert "default" not in at(schema, ".spec.roles[].restartPolicy")  # depends on the workload kind
    assert at(schema, ".spec.roles[].leaderWorkerSet.size")["default"] == 1
    assert at(schema, ".spec.podGroupPolicy.kubeScheduling.scheduleTimeoutSeconds")["default"] == 60
    for field, default in (("maxUnavailable", 1), ("maxSurge", 0), ("partition", 0)):
        node = at(schema, f".spec.roles[].rolloutStrategy.rollingUpdate.{field}")
        assert node["x-kubernetes-int-or-string"] is True and node["default"] == default
    for rule in ("rollingUpdate", "scaling"):
        assert at(schema, f".spec.coordination[].strategy.{rule}.maxSkew")["x-kubernetes-int-or-string"]
    ports = at(schema, ".spec.roles[].servicePorts[]")
    assert set(ports["properties"]) == {"name", "port", "targetPort", "protocol", "appProtocol", "nodePort"}
    assert ports["required"] == ["port"]
    assert ports["properties"]["targetPort"]["x-kubernetes-int-or-string"] is True


def test_unknown_fields_are_kept_only_in_kubernetes_objects() -> None:
    preserved = {
        path
        for path, node in nodes(schema_of("RoleBasedGroup"))
        if node.get("x-kubernetes-preserve-unknown-fields")
    }
    assert preserved == {
        ".spec.roles[].template",
        ".spec.roles[].templatePatch",
        ".spec.roles[].leaderWorkerSet.patchLeaderTemplate",
        ".spec.roles[].leaderWorkerSet.patchWorkerTemplate",
        ".spec.roles[].engineRuntimes[].containers[]",
        ".spec.roles[].components[].template",
        ".spec.roleTemplates[].template",
        ".status.placement",
    }
    for path in preserved:
        assert at(schema_of("RoleBasedGroup"), path)["type"] == "object"


def test_rbgs_template_is_the_rbg_spec() -> None:
    template = at(schema_of("RoleBasedGroupSet"), ".spec.template")
    rbg_spec = at(schema_of("RoleBasedGroup"), ".spec")
    assert {k: v for k, v in template.items() if k != "description"} == {
        k: v for k, v in rbg_spec.items() if k != "description"
    }
    assert at(schema_of("RoleBasedGroupSet"), ".spec.replicas")["default"] == 1


def test_names_columns_and_subresources() -> None:
    crds = {kind.kind: crd_manifest(kind) for kind in KINDS}
    expected = {
        "RoleBasedGroup": ("rolebasedgroups", ["rbg"]),
        "RoleBasedGroupSet": ("rolebasedgroupsets", ["rbgs"]),
        "RoleBasedGroupScalingAdapter": ("rolebasedgroupscalingadapters", ["rbgsa"]),
    }
    for kind, (plural, short) in expected.items():
        crd = crds[kind]
        assert crd["metadata"]["name"] == f"{plural}.workloads.x-k8s.io"
        assert crd["spec"]["group"] == "workloads.x-k8s.io" and crd["spec"]["scope"] == "Namespaced"
        assert crd["spec"]["names"] == {
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": kind.lower(),
            "shortNames": short,
        }
        # Both versions and which one is stored: test_api_crd_versions.py.
        assert all(version["served"] for version in crd["spec"]["versions"])
        assert [v["name"] for v in crd["spec"]["versions"] if v["storage"]] == [
            "v1alpha2" if crd_module.SERVE_V1ALPHA2 else "v1alpha1"
        ]

    def columns(kind: str) -> list[tuple[str, str, str]]:
        version = crds[kind]["spec"]["versions"][0]
        return [(c["name"], c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]

    def subresources(kind: str) -> dict[str, Any]:
        result: dict[str, Any] = crds[kind]["spec"]["versions"][0]["subresources"]
        return result

    age = ("AGE", "date", ".metadata.creationTimestamp")
    assert columns("RoleBasedGroup") == [
        ("READY", "string", '.status.conditions[?(@.type=="Ready")].status'),
        ("REVISION", "string", ".status.currentRevision"),
        ("PHASE", "string", ".status.phase"),
        age,
    ]
    assert columns("RoleBasedGroupSet") == [
        ("DESIRED", "integer", ".spec.replicas"),
        ("READY", "integer", ".status.readyReplicas"),
        age,
    ]
    assert columns("RoleBasedGroupScalingAdapter") == [
        ("PHASE", "string", ".status.phase"),
        ("REPLICAS", "integer", ".status.replicas"),
        ("READY", "integer", ".status.readyReplicas"),
        age,
    ]
    assert subresources("RoleBasedGroup") == {"status": {}}
    # Both scale selectors select one object per unit scaled: the set's groups, the adapter's role's pods.
    assert subresources("RoleBasedGroupSet") == subresources("RoleBasedGroupScalingAdapter")
    assert subresources("RoleBasedGroupScalingAdapter") == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_server_defaults_equal_model_defaults(kind: str) -> None:
    sample = SAMPLES[kind]
    server_side = apply_defaults(schema_of(kind), copy.deepcopy(sample))
    model = MODELS[kind].model_validate(sample)
    assert model.model_dump(by_alias=True, exclude_none=True) == server_side


def test_every_model_field_is_in_the_schema() -> None:
    # A field the converter dropped would be pruned by the API server without a word.
    schema = structural_schema(RoleBasedGroup)
    role = at(schema, ".spec.roles[]")["properties"]
    assert set(role) == {
        "name",
        "labels",
        "annotations",
        "replicas",
        "workload",
        "template",
        "templateRef",
        "templatePatch",
        "leaderWorkerSet",
        "dependencies",
        "rolloutStrategy",
        "restartPolicy",
        "restartPolicyConfig",
        "servicePorts",
        "engineRuntimes",
        "scalingAdapter",
        "minReadySeconds",
        "components",
        "podManagementPolicy",
    }
    assert set(at(schema, ".spec")["properties"]) == {
        "roles",
        "roleTemplates",
        "podGroupPolicy",
        "coordination",
        "rolloutOrder",
        "placement",
    }
    assert set(at(schema, ".status")["properties"]) == {
        "observedGeneration",
        "conditions",
        "roleStatuses",
        "currentRevision",
        "updateRevision",
        "phase",
        "placement",
        "workflowId",
    }
    adapter = structural_schema(RoleBasedGroupScalingAdapter)
    assert set(at(adapter, ".status")["properties"]) == {
        "phase",
        "replicas",
        "readyReplicas",
        "selector",
        "lastScaleTime",
    }
    assert at(adapter, ".status.phase")["enum"] == ["NotBound", "Bound"]
    assert at(adapter, ".spec")["required"] == ["scaleTargetRef"]
