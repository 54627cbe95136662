"""The multi-version CRDs: v1alpha2 stored, v1alpha1 served beside it (deprecated), conversion through
the webhook where the versions differ; the ClusterEngineRuntimeProfile CRD."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rbg_flows.api import crd
from rbg_flows.api.crd import KINDS, WEBHOOK_CLIENT_CONFIG, CrdKind, crd_manifest
from tests.unit.test_conversion import EXAMPLES, pruned

WEBHOOK_KINDS = {"RoleBasedGroup", "RoleBasedGroupSet"}
SAME_SCHEMA_KINDS = {"RoleBasedGroupScalingAdapter", "ClusterEngineRuntimeProfile"}


@pytest.fixture
def both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crd, "SERVE_V1ALPHA2", True)


def kind_named(name: str) -> CrdKind:
    return next(kind for kind in KINDS if kind.kind == name)


def version_of(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    version: dict[str, Any] = next(v for v in manifest["spec"]["versions"] if v["name"] == name)
    return version


@pytest.mark.usefixtures("both_versions")
@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_v1alpha2_is_stored_and_v1alpha1_deprecated(kind: str) -> None:
    manifest = crd_manifest(kind_named(kind))
    v1, v2 = manifest["spec"]["versions"]
    assert (v1["name"], v1["served"], v1["storage"], v1["deprecated"]) == ("v1alpha1", True, False, True)
    assert v1["deprecationWarning"] == (
        f"workloads.x-k8s.io/v1alpha1 {kind} is deprecated; use workloads.x-k8s.io/v1alpha2 {kind}"
    )
    assert (v2["name"], v2["served"], v2["storage"]) == ("v1alpha2", True, True)
    assert "deprecated" not in v2
    # Each version has the same columns and subresources (the status fields they read are in both).
    assert v1["additionalPrinterColumns"] == v2["additionalPrinterColumns"]
    assert v1["subresources"] == v2["subresources"]


@pytest.mark.usefixtures("both_versions")
def test_conversion_strategy() -> None:
    for kind in KINDS:
        conversion = crd_manifest(kind)["spec"]["conversion"]
        if kind.kind in WEBHOOK_KINDS:
            assert conversion == {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": {
                        "service": {
                            "namespace": "rbg-flows-system",
                            "name": "rbg-flows-webhook",
                            "path": "/convert",
                            "port": 443,
                        }
                    },
                },
            }
        else:
            assert kind.kind in SAME_SCHEMA_KINDS
            assert conversion == {"strategy": "None"}
    sim = {"url": "https://127.0.0.1:9443/convert", "caBundle": "Q0E="}
    manifest = crd_manifest(kind_named("RoleBasedGroup"), sim)
    assert manifest["spec"]["conversion"]["webhook"]["clientConfig"] == sim
    # The default is not shared with (or changed through) a manifest.
    manifest["spec"]["conversion"]["webhook"]["clientConfig"]["url"] = "changed"
    assert "url" not in WEBHOOK_CLIENT_CONFIG


def test_without_the_switch_the_three_kinds_stay_v1alpha1_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crd, "SERVE_V1ALPHA2", False)
    for kind in KINDS:
        manifest = crd_manifest(kind)
        names = [(v["name"], v["storage"]) for v in manifest["spec"]["versions"]]
        if kind.kind == "ClusterEngineRuntimeProfile":  # new with v1alpha2: no webhook needed
            assert names == [("v1alpha1", False), ("v1alpha2", True)]
        else:
            assert names == [("v1alpha1", True)]
            assert "conversion" not in manifest["spec"]


@pytest.mark.usefixtures("both_versions")
def test_each_version_has_its_own_schema() -> None:
    manifest = crd_manifest(kind_named("RoleBasedGroup"))
    v1 = version_of(manifest, "v1alpha1")["schema"]["openAPIV3Schema"]
    v2 = version_of(manifest, "v1alpha2")["schema"]["openAPIV3Schema"]
    v1_role = v1["properties"]["spec"]["properties"]["roles"]["items"]
    v2_role = v2["properties"]["spec"]["properties"]["roles"]["items"]
    assert {"workload", "template", "templateRef", "templatePatch", "leaderWorkerSet"} <= set(
        v1_role["properties"]
    )
    assert not {"workload", "template", "templatePatch", "leaderWorkerSet"} & set(v2_role["properties"])
    assert {"standalonePattern", "leaderWorkerPattern", "customComponentsPattern"} <= set(
        v2_role["properties"]
    )
    assert v2_role["x-kubernetes-validations"] == [
        {
            "rule": "!(has(self.standalonePattern) && has(self.leaderWorkerPattern))",
            "message": "standalonePattern and leaderWorkerPattern are mutually exclusive",
        }
    ]
    lwp = v2_role["properties"]["leaderWorkerPattern"]["properties"]
    assert lwp["size"]["default"] == 1
    assert set(lwp["templateRef"]["properties"]) == {"name", "patch"}
    assert lwp["restartPolicyConfig"]["properties"]["type"]["enum"] == [
        "None",
        "RecreateRBGOnPodRestart",
        "RecreateRoleInstanceOnPodRestart",
    ]
    v2_spec = set(v2["properties"]["spec"]["properties"])
    # (ext) fields stay; gang scheduling moved to annotations.
    assert v2_spec == {"roles", "roleTemplates", "coordination", "rolloutOrder", "placement"}
    assert set(v2["properties"]["status"]["properties"]) == set(v1["properties"]["status"]["properties"])
    rbgs = version_of(crd_manifest(kind_named("RoleBasedGroupSet")), "v1alpha2")["schema"]["openAPIV3Schema"]
    group_template = rbgs["properties"]["spec"]["properties"]["groupTemplate"]
    assert set(group_template["properties"]) == {"labels", "annotations", "spec"}
    assert (
        group_template["properties"]["spec"]["properties"]["roles"]
        == v2["properties"]["spec"]["properties"]["roles"]
    )


def test_profile_crd() -> None:
    manifest = crd_manifest(kind_named("ClusterEngineRuntimeProfile"))
    spec = manifest["spec"]
    assert manifest["metadata"]["name"] == "clusterengineruntimeprofiles.workloads.x-k8s.io"
    assert spec["scope"] == "Cluster"
    assert spec["names"] == {
        "kind": "ClusterEngineRuntimeProfile",
        "listKind": "ClusterEngineRuntimeProfileList",
        "plural": "clusterengineruntimeprofiles",
        "singular": "clusterengineruntimeprofile",
    }
    assert spec["conversion"] == {"strategy": "None"}
    for version in spec["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert "required" not in schema  # the reference's spec is optional
        profile = schema["properties"]["spec"]["properties"]
        assert set(profile) == {"initContainers", "containers", "volumes", "updateStrategy"}
        assert profile["updateStrategy"]["default"] == "NoUpdate"
        assert profile["updateStrategy"]["enum"] == ["NoUpdate", "RollingUpdate"]
        for field in ("initContainers", "containers", "volumes"):
            assert profile[field]["items"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        assert version["subresources"] == {"status": {}}


@pytest.mark.usefixtures("both_versions")
@pytest.mark.parametrize(
    "path", sorted([*EXAMPLES.glob("*.yaml"), *(EXAMPLES / "v1alpha2").glob("*.yaml")]), ids=str
)
def test_both_versions_admit_the_examples(path: Path) -> None:
    manifests = {kind.kind: crd_manifest(kind) for kind in KINDS}
    for doc in yaml.safe_load_all(path.read_text()):
        if not doc:
            continue
        version = version_of(manifests[doc["kind"]], doc["apiVersion"].rsplit("/", 1)[-1])
        schema = version["schema"]["openAPIV3Schema"]
        jsonschema.Draft7Validator(schema).validate(doc)
        assert list(pruned(schema, doc)) == [], f"{path}: fields the API server would drop"


def test_committed_crds_follow_the_switch() -> None:
    committed = yaml.safe_load(
        (
            Path(__file__).resolve().parents[2]
            / "deploy"
            / "crds"
            / "workloads.x-k8s.io_rolebasedgroups.yaml"
        ).read_text()
    )
    assert [v["name"] for v in committed["spec"]["versions"]] == (
        ["v1alpha1", "v1alpha2"] if crd.SERVE_V1ALPHA2 else ["v1alpha1"]
    )
