"""The Helm chart (deploy/helm/rbg-flows) and the kustomize base (deploy/) describe one install. The
chart's templates are the base's files with only the values templated in; this test renders both (`helm
template` with the chart's defaults, `kubectl kustomize` with the sim's kubectl) and diffs the parsed
objects, Helm's own labels aside. The namespaced variant is diffed the same way against
deploy/overlays/namespaced. The chart's crds/ are copies of deploy/crds, checked here byte for byte.

Helm comes from `make helm-build` (its Go module, cached beside the sim's binaries; `make test` runs it
first), or RBG_HELM, or `helm` on PATH."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.sim.build import cache_root, ensure_binaries

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "rbg-flows"
# Labels a Helm release adds to every object's metadata; the base has none of them.
HELM_LABELS = ("app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart")
# The namespace deploy/overlays/namespaced grants its Roles in.
OVERLAY_NAMESPACE = "rbg-workloads"

Key = tuple[str, str, str, str]


def _helm_version() -> str:
    m = re.search(r"^HELM_VERSION\s*\?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert m, "the Makefile names HELM_VERSION"
    return m.group(1)


@pytest.fixture(scope="module")
def helm() -> str:
    built = cache_root() / f"helm-{_helm_version()}" / "helm"
    for candidate in (os.environ.get("RBG_HELM"), str(built), shutil.which("helm")):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.skip(f"no helm binary: run `make helm-build` (builds {built}) or set RBG_HELM")


@pytest.fixture(scope="module")
def kubectl() -> str:
    return str(ensure_binaries(with_lws=False).bin_dir / "kubectl")


def _objects(text: str) -> dict[Key, dict[str, Any]]:
    out: dict[Key, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc["metadata"]
        key = (doc["apiVersion"], doc["kind"], meta.get("namespace", ""), meta["name"])
        assert key not in out, f"{key} rendered twice"
        labels = meta.get("labels", {})
        for label in HELM_LABELS:
            labels.pop(label, None)
        out[key] = doc
    return out


def _run(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _render(helm: str, *values: str) -> dict[Key, dict[str, Any]]:
    sets = [a for v in values for a in ("--set", v)]
    return _objects(_run(helm, "template", "rbg-flows", str(CHART), "--include-crds", *sets))


def _assert_same(chart: dict[Key, dict[str, Any]], base: dict[Key, dict[str, Any]]) -> None:
    assert sorted(chart) == sorted(base), "the chart and the base render different objects"
    for key, obj in base.items():
        assert chart[key] == obj, f"{key} differs between the chart and the base"


def test_chart_defaults_render_the_base(helm: str, kubectl: str) -> None:
    _assert_same(_render(helm), _objects(_run(kubectl, "kustomize", str(ROOT / "deploy"))))


def test_chart_with_watched_namespaces_renders_the_namespaced_overlay(helm: str, kubectl: str) -> None:
    base = _objects(_run(kubectl, "kustomize", str(ROOT / "deploy" / "overlays" / "namespaced")))
    _assert_same(_render(helm, f"watchNamespaces={{{OVERLAY_NAMESPACE}}}"), base)


def test_chart_with_cert_manager_renders_the_cert_manager_overlay_but_its_crd_annotations(
    helm: str, kubectl: str
) -> None:
    # The chart's crds/ are not templated: the overlay's inject-ca-from annotation is the one difference
    # (templates/webhook-certs.yaml says how to add it).
    overlay = _objects(_run(kubectl, "kustomize", str(ROOT / "deploy" / "overlays" / "cert-manager")))
    for key in [k for k in overlay if k[1] == "CustomResourceDefinition"]:
        annotations = overlay[key]["metadata"].pop("annotations", {})
        assert annotations in ({}, {"cert-manager.io/inject-ca-from": "rbg-flows-system/rbg-flows-webhook"})
    chart = _render(helm, "webhook.certManager.enabled=true")
    _assert_same(chart, overlay)
    assert not [k for k in chart if k[1] == "Job"]
    assert ("cert-manager.io/v1", "Certificate", "rbg-flows-system", "rbg-flows-webhook") in chart


def test_values_reach_the_objects(helm: str) -> None:
    objs = _render(
        helm,
        "watchNamespaces={team-a,team-b}",
        "temporal.address=temporal.example:7233",
        "temporal.namespace=prod",
        "clusterId=prod-eu",
        "image.tag=9.9.9",
        "worker.resources.limits.memory=1Gi",
        "webhook.replicas=3",
        "temporal.secretName=",
        "temporal.tlsSecretName=",
    )
    ns = "rbg-flows-system"
    config = objs[("v1", "ConfigMap", ns, "rbg-flows-config")]["data"]
    assert config["RBG_TEMPORAL_ADDRESS"] == "temporal.example:7233"
    assert config["RBG_TEMPORAL_NAMESPACE"] == "prod"
    assert config["RBG_CLUSTER_ID"] == "prod-eu"
    own_namespace = ("rbg-flows-watcher-lease", "rbg-flows-webhook-certs", "rbg-flows-worker-placement")
    roles = {k for k in objs if k[1] in ("Role", "RoleBinding") and k[3] not in own_namespace}
    assert {k[2] for k in roles} == {"team-a", "team-b"} and len(roles) == 8
    assert ("rbac.authorization.k8s.io/v1", "Role", ns, "rbg-flows-watcher-lease") in objs
    assert not any(k[1] == "ClusterRole" and k[3] in ("rbg-flows-worker", "rbg-flows-watcher") for k in objs)
    watcher = objs[("apps/v1", "Deployment", ns, "rbg-flows-watcher")]["spec"]["template"]["spec"]
    worker = objs[("apps/v1", "Deployment", ns, "rbg-flows-worker")]["spec"]["template"]["spec"]
    assert watcher["containers"][0]["args"][1:3] == ["--namespace=team-a", "--namespace=team-b"]
    assert worker["containers"][0]["image"].endswith(":9.9.9")
    assert worker["containers"][0]["resources"]["limits"]["memory"] == "1Gi"
    webhook = objs[("apps/v1", "Deployment", ns, "rbg-flows-webhook")]
    assert webhook["spec"]["replicas"] == 3
    assert webhook["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":9.9.9")
    # Without the Secrets' names the pods name no Secret at all.
    assert not [v for v in worker["volumes"] if "secret" in v]
    assert not [e for e in worker["containers"][0]["envFrom"] if "secretRef" in e]


def test_chart_lints(helm: str) -> None:
    _run(helm, "lint", "--strict", str(CHART))
    _run(helm, "lint", "--strict", str(CHART), "--set", "watchNamespaces={a,b}")


def test_chart_crds_are_the_generated_ones() -> None:
    generated = {p.name: p.read_bytes() for p in (ROOT / "deploy" / "crds").glob("*.yaml")}
    copied = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert generated, "deploy/crds has the generated CRDs"
    assert copied == generated, (
        "refresh the chart's copies: cp deploy/crds/*.yaml deploy/helm/rbg-flows/crds/"
    )
