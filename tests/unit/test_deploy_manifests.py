"""deploy/ as rendered by kustomize: no wildcard in any RBAC rule, the namespaced overlay's Roles carry
the base's rules, and the Deployments keep their hardening. Rendered with kubectl when one is at hand,
else read from the YAML files the kustomizations list (no server either way)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.api.crd import KINDS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUSTOMIZATIONS = ["", "overlays/namespaced", "overlays/monitoring", "overlays/cert-manager"]
RULE_KINDS = {"Role", "ClusterRole"}


def _kubectl() -> str | None:
    """kubectl from PATH, else the one the sim built (its cache), else None."""
    found = shutil.which("kubectl")
    if found:
        return found
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rbg-flows"
    built = sorted(cache.glob("k8s-*/bin/kubectl"))
    return str(built[-1]) if built else None


def _files_of(directory: Path) -> list[dict[str, Any]]:
    """Every object a kustomization's resources name, recursively (patches are not applied)."""
    kfile = next(p for p in (directory / "kustomization.yaml", directory / "Kustomization") if p.exists())
    docs: list[dict[str, Any]] = []
    for entry in yaml.safe_load(kfile.read_text()).get("resources") or []:
        path = directory / entry
        if path.is_dir():
            docs += _files_of(path)
        else:
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def render(kustomization: str) -> list[dict[str, Any]]:
    kubectl = _kubectl()
    if kubectl is None:
        return _files_of(DEPLOY / kustomization)
    out = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / kustomization)], capture_output=True, text=True, check=True
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def every_yaml_doc() -> list[tuple[str, dict[str, Any]]]:
    """Every object in every YAML file of the kustomizations (base and overlays), listed or not. The Helm
    chart beside them is templates, not YAML; its test renders it."""
    return [
        (str(path.relative_to(ROOT)), doc)
        for tree in ("base", "overlays")
        for path in sorted((DEPLOY / tree).rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
    ]


def rules_of(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", rule)
        for d in docs
        if d.get("kind") in RULE_KINDS
        for rule in d.get("rules") or []
    ]


def wildcards(rules: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [
        f"{owner}: {field}={rule[field]}"
        for owner, rule in rules
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs")
        if any("*" in value for value in rule.get(field) or [])
    ]


def by_name(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_no_rbac_rule_uses_a_wildcard(kustomization: str) -> None:
    rules = rules_of(render(kustomization))
    assert rules, "no RBAC rules rendered"
    assert wildcards(rules) == []


def test_no_yaml_file_under_deploy_grants_a_wildcard() -> None:
    # Patches too: a JSON patch adding a rule holds the rule as its value.
    rules = rules_of([d for _, d in every_yaml_doc()])
    patch_values = [
        ("patch", op["value"])
        for kfile in (DEPLOY / "overlays").rglob("kustomization.yaml")
        for entry in yaml.safe_load(kfile.read_text()).get("patches") or []
        if isinstance(entry.get("patch"), str)
        for op in yaml.safe_load(entry["patch"]) or []
        if isinstance(op, dict) and isinstance(op.get("value"), dict)
    ]
    assert wildcards([*rules, *patch_values]) == []


def test_the_check_sees_a_wildcard() -> None:
    assert wildcards([("ClusterRole/x", {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]})])


def test_the_namespaced_roles_grant_what_the_base_cluster_roles_do() -> None:
    if _kubectl() is None:
        pytest.skip("needs kubectl to apply the overlay's patches (none on PATH nor built by the sim)")
    base = by_name(render(""), "ClusterRole")
    namespaced = render("overlays/namespaced")
    in_watched = [d for d in namespaced if d["metadata"].get("namespace") == "rbg-workloads"]
    roles = by_name(in_watched, "Role")
    assert set(roles) == {"rbg-flows-worker", "rbg-flows-watcher"}
    for name, role in roles.items():
        assert role["rules"] == base[name]["rules"], name
        assert role["metadata"]["namespace"] == "rbg-workloads"
    # The cluster-wide grants they replace are gone; only cluster-scoped needs stay cluster-wide.
    assert set(by_name(namespaced, "ClusterRole")) == {
        "rbg-flows-worker-cache",
        "rbg-flows-watcher-scan",
        "rbg-flows-cluster-id",
        "rbg-flows-webhook-certs",  # the CRDs' caBundle: cluster-scoped objects
    }
    bindings = by_name(in_watched, "RoleBinding")
    assert {b["roleRef"]["name"] for b in bindings.values()} == set(roles)
    # The watcher's Lease, the webhook's Secret and the placement ledger stay in the system namespace.
    own = by_name([d for d in namespaced if d not in in_watched], "Role")
    assert set(own) == {"rbg-flows-watcher-lease", "rbg-flows-webhook-certs", "rbg-flows-worker-placement"}
    assert (
        own["rbg-flows-watcher-lease"]["metadata"]
        == (by_name(render(""), "Role")["rbg-flows-watcher-lease"]["metadata"])
    )
    watcher = by_name(namespaced, "Deployment")["rbg-flows-watcher"]
    args = watcher["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=rbg-workloads" in args and "--all-namespaces" not in args


def test_every_binding_names_a_rendered_role_and_a_rendered_service_account() -> None:
    for kustomization in KUSTOMIZATIONS:
        docs = render(kustomization)
        accounts = {
            (d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs if d["kind"] == "ServiceAccount"
        }
        for binding in (d for d in docs if d["kind"] in {"RoleBinding", "ClusterRoleBinding"}):
            ref = binding["roleRef"]
            assert ref["name"] in by_name(docs, ref["kind"]), (kustomization, binding["metadata"]["name"])
            for s in binding["subjects"]:
                assert (s["namespace"], s["name"]) in accounts, (kustomization, s)


def _assert_hardened(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod's one container, after checking the pod and it run as the base's non-root, read-only."""
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/tmp"}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    return dict(container)


def test_the_deployments_run_hardened_from_the_config_map() -> None:
    docs = render("")
    deployments = by_name(docs, "Deployment")
    assert set(deployments) == {"rbg-flows-worker", "rbg-flows-watcher", "rbg-flows-webhook"}
    assert "rbg-flows-config" in by_name(docs, "ConfigMap")
    for name, dep in deployments.items():
        pod = dep["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        container = _assert_hardened(pod)
        assert container["livenessProbe"]["httpGet"]["port"] == "health"
        if name == "rbg-flows-webhook":
            continue  # no Temporal: no config (its own test below)
        assert {"configMapRef": {"name": "rbg-flows-config"}} in container["envFrom"]
        assert all(ref.get("optional") for e in container["envFrom"] if (ref := e.get("secretRef")))
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
            "health": 8080,
            "metrics": 9090,
        }
    assert deployments["rbg-flows-worker"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"
    assert deployments["rbg-flows-watcher"]["spec"]["template"]["spec"]["containers"][0]["args"][:2] == [
        "watcher",
        "--all-namespaces",
    ]


def test_the_webhook_serves_its_service_with_the_mounted_certificate_and_no_api_token() -> None:
    docs = render("")
    dep = by_name(docs, "Deployment")["rbg-flows-webhook"]
    assert dep["spec"]["replicas"] >= 2
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][0] == "webhook"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"webhook": 9443, "health": 8080, "metrics": 9090}
    assert "--port=9443" in container["args"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "webhook-tls")
    assert f"--cert-file={mount['mountPath']}/tls.crt" in container["args"]
    assert f"--key-file={mount['mountPath']}/tls.key" in container["args"]
    volume = next(v for v in pod["volumes"] if v["name"] == "webhook-tls")
    assert volume["secret"]["secretName"] == "rbg-flows-webhook-tls"
    # The webhook calls no API: no token, and no binding names its account.
    assert pod["automountServiceAccountToken"] is False
    assert by_name(docs, "ServiceAccount")["rbg-flows-webhook"]["automountServiceAccountToken"] is False
    for kustomization in KUSTOMIZATIONS:
        for b in render(kustomization):
            if b["kind"] in {"RoleBinding", "ClusterRoleBinding"}:
                assert all(s["name"] != "rbg-flows-webhook" for s in b["subjects"]), b["metadata"]["name"]
    # The Service the CRDs' clientConfig names: 443 to the webhook port, selecting these pods.
    service = by_name(docs, "Service")["rbg-flows-webhook"]
    assert service["metadata"]["namespace"] == "rbg-flows-system"
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "webhook"}]
    assert service["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    pdb = by_name(docs, "PodDisruptionBudget")["rbg-flows-webhook"]
    assert pdb["spec"]["minAvailable"] == 1


def test_the_certificate_comes_from_the_job_or_from_cert_manager() -> None:
    base = render("")
    (job,) = [d for d in base if d["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    assert _assert_hardened(pod)["args"] == ["webhook-certs", "--namespace=rbg-flows-system"]
    assert pod["serviceAccountName"] == "rbg-flows-webhook-certs"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0  # so a re-apply can make it again
    overlay = render("overlays/cert-manager")
    assert not [d for d in overlay if "webhook-certs" in d["metadata"]["name"]]
    (cert,) = [d for d in overlay if d["kind"] == "Certificate"]
    assert cert["spec"]["secretName"] == "rbg-flows-webhook-tls"
    assert "rbg-flows-webhook.rbg-flows-system.svc" in cert["spec"]["dnsNames"]
    key = f"{cert['metadata']['namespace']}/{cert['metadata']['name']}"
    # Exactly the CRDs that convert through the webhook get cert-manager's CA (and name its Service).
    converted = {kind.crd_name for kind in KINDS if kind.webhook_conversion}
    assert converted
    for crd in (d for d in overlay if d["kind"] == "CustomResourceDefinition"):
        name = crd["metadata"]["name"]
        injected = (crd["metadata"].get("annotations") or {}).get("cert-manager.io/inject-ca-from")
        assert injected == (key if name in converted else None), name
        conversion = crd["spec"].get("conversion") or {}
        if conversion.get("strategy") != "Webhook":
            continue
        service = conversion["webhook"]["clientConfig"]["service"]
        assert (service["namespace"], service["name"]) == ("rbg-flows-system", "rbg-flows-webhook")


def test_the_monitoring_overlay_scrapes_the_metrics_port() -> None:
    (monitor,) = [d for d in render("overlays/monitoring") if d["kind"] == "PodMonitor"]
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["metrics"]
    labels = monitor["spec"]["selector"]["matchLabels"]
    for dep in by_name(render(""), "Deployment").values():
        assert labels.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_the_base_uses_no_generators() -> None:
    # The Helm chart mirrors the base object for object: hashed names would not match.
    for kfile in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kfile.read_text())
        assert not spec.get("configMapGenerator") and not spec.get("secretGenerator"), kfile


def test_profiles_are_read_cluster_wide_with_only_the_verbs_the_code_uses() -> None:
    """ClusterEngineRuntimeProfiles are cluster-scoped: a Role cannot grant them, so even the namespaced
    install reads them through ClusterRoles, and only as the code does (the worker's cache and GETs, the
    watcher's kopf watch); nothing writes them."""
    overlays = [""] + (["overlays/namespaced"] if _kubectl() is not None else [])
    for overlay in overlays:
        docs = render(overlay)
        grants: dict[str, set[str]] = {}
        for doc in docs:
            if doc["kind"] not in RULE_KINDS:
                continue
            for rule in doc.get("rules") or []:
                if "clusterengineruntimeprofiles" in rule.get("resources", []):
                    assert doc["kind"] == "ClusterRole", (overlay, doc["metadata"]["name"])
                    grants.setdefault(doc["metadata"]["name"], set()).update(rule["verbs"])
        assert grants == {
            "rbg-flows-worker-cache": {"get", "list", "watch"},
            "rbg-flows-watcher-scan": {"list", "watch"},
        }, overlay
        bound = {
            b["roleRef"]["name"]: {s["name"] for s in b["subjects"]}
            for b in docs
            if b["kind"] == "ClusterRoleBinding"
        }
        assert bound["rbg-flows-worker-cache"] == {"rbg-flows-worker"}
        assert bound["rbg-flows-watcher-scan"] == {"rbg-flows-watcher"}
