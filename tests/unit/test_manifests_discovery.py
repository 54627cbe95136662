"""The discovery ConfigMap: exact config.yaml text (as the Go reference renders it), its mount in
every container, and what scaling changes."""

from __future__ import annotations

from typing import Any

import pytest

from rbg_flows.api import ServicePort
from rbg_flows.manifests import (
    build_workload,
    discovery_config,
    discovery_configmap,
    mount_discovery,
    port_key,
)
from rbg_flows.manifests.goyaml import go_resolve, render_go_yaml
from tests.unit.test_manifests_examples import UID, lws_rbg, pd_rbg

# Checked byte for byte against the output of the reference's ConfigBuilder types marshalled with
# sigs.k8s.io/yaml v1.6.0.
PD_CONFIG = """\
group:
  name: pd-demo
  roles:
  - prefill
  - decode
  - router
  size: 3
roles:
  decode:
    instances:
    - address: pd-demo-decode-0.s-pd-demo-decode
      ports:
        http_api: 8000
    - address: pd-demo-decode-1.s-pd-demo-decode
      ports:
        http_api: 8000
    size: 2
  prefill:
    instances:
    - address: pd-demo-prefill-0.s-pd-demo-prefill
      ports:
        http_api: 8000
    - address: pd-demo-prefill-1.s-pd-demo-prefill
      ports:
        http_api: 8000
    size: 2
  router:
    instances:
    - address: pd-demo-router-0.s-pd-demo-router
      ports:
        http: 8080
    size: 1
"""

MOUNT = {"name": "rbg-cluster-config", "mountPath": "/etc/rbg", "readOnly": True}


def test_pd_config_text() -> None:
    assert discovery_config(pd_rbg()) == PD_CONFIG


def test_roles_without_ports_or_replicas() -> None:
    text = discovery_config(lws_rbg(router={"replicas": 0}))
    assert "  router:\n    instances: []\n    size: 0\n" in text
    assert "    - address: pd-lws-prefill-0.pd-lws-prefill\n      ports:\n        http_api: 8000\n" in text


def test_yaml_follows_go_key_order_and_quoting() -> None:
    # Output of sigs.k8s.io/yaml.Marshal for the same data.
    data = {
        "group": {"name": "g", "size": 4, "roles": ["y", "123", "role10", "role2"]},
        "roles": {
            name: {"size": 1, "instances": [{"address": f"a-{name}", "ports": {"true": 1, "http_api": 2}}]}
            for name in ("y", "123", "role10", "role2")
        },
    }
    entry = (
        '    instances:\n    - address: a-{}\n      ports:\n        http_api: 2\n        "true": 1\n'
        "    size: 1\n"
    )
    expected = (
        'group:\n  name: g\n  roles:\n  - "y"\n  - "123"\n  - role10\n  - role2\n  size: 4\nroles:\n'
        + '  "123":\n' + entry.format("123")
        + "  role2:\n" + entry.format("role2")
        + "  role10:\n" + entry.format("role10")
        + '  "y":\n' + entry.format("y")
    )  # fmt: skip
    assert render_go_yaml(data) == expected


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("prefill", False),
        ("pd-demo-prefill-0.s-pd-demo-prefill", False),
        ("http_api", False),
        ("y", True),
        ("on", True),
        ("null", True),
        ("123", True),
        ("0x1f", True),
        ("0o17", True),
        ("1e3", True),
        ("1.5", True),
        (".5", True),
        ("2001-12-14", True),
        ("2001-02-30", False),
        ("1-2", False),
        ("=", False),
    ],
)
def test_go_yaml_quoting(text: str, quoted: bool) -> None:
    assert (go_resolve(text) != "tag:yaml.org,2002:str") == quoted
    assert render_go_yaml([text]).startswith('- "') == quoted


@pytest.mark.parametrize(
    ("port", "key"),
    [
        (ServicePort(name="http-api", port=8000), "http_api"),
        (ServicePort(name="Metrics-Port", port=9000), "metrics_port"),
        (ServicePort(port=30000), "port30000"),
    ],
)
def test_port_keys(port: ServicePort, key: str) -> None:
    assert port_key(port) == key


def test_configmap() -> None:
    cm = discovery_configmap(pd_rbg())
    assert cm["apiVersion"] == "v1"
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["name"] == "pd-demo"
    assert cm["metadata"]["namespace"] == "inference"
    assert cm["metadata"]["labels"]["rolebasedgroup.workloads.x-k8s.io/name"] == "pd-demo"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == UID
    assert cm["data"] == {"config.yaml": PD_CONFIG}


def test_scaling_changes_the_configmap() -> None:
    assert discovery_config(pd_rbg(decode={"replicas": 3})) != PD_CONFIG
    assert "pd-demo-decode-2.s-pd-demo-decode" in discovery_config(pd_rbg(decode={"replicas": 3}))


def pod_templates(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]
    if workload["kind"] == "LeaderWorkerSet":
        return [
            spec["leaderWorkerTemplate"]["leaderTemplate"],
            spec["leaderWorkerTemplate"]["workerTemplate"],
        ]
    return [spec["template"]]


def test_every_container_mounts_the_file() -> None:
    volume: dict[str, Any] = {
        "name": "rbg-cluster-config",
        "configMap": {"name": "pd-demo", "items": [{"key": "config.yaml", "path": "config.yaml"}]},
    }
    for rbg in (pd_rbg(), lws_rbg()):
        name = rbg.metadata.name
        for role in rbg.spec.roles:
            for template in pod_templates(build_workload(rbg, role)):
                spec = template["spec"]
                mine = [v for v in spec["volumes"] if v["name"] == "rbg-cluster-config"]
                assert mine == [{**volume, "configMap": {**volume["configMap"], "name": name}}]
                for container in [*spec.get("initContainers", []), *spec["containers"]]:
                    assert container["volumeMounts"].count(MOUNT) == 1, (role.name, container["name"])


def test_mount_replaces_a_conflicting_user_mount_and_keeps_the_rest() -> None:
    template = {
        "spec": {
            "volumes": [{"name": "models", "emptyDir": {}}, {"name": "rbg-cluster-config", "emptyDir": {}}],
            "containers": [
                {
                    "name": "engine",
                    "volumeMounts": [
                        {"name": "models", "mountPath": "/models"},
                        {"name": "old", "mountPath": "/etc/rbg"},
                    ],
                }
            ],
        }
    }
    out = mount_discovery(template, "pd-demo")
    assert [v["name"] for v in out["spec"]["volumes"]] == ["models", "rbg-cluster-config"]
    assert out["spec"]["volumes"][1]["configMap"]["name"] == "pd-demo"
    assert out["spec"]["containers"][0]["volumeMounts"] == [{"name": "models", "mountPath": "/models"}, MOUNT]
    assert mount_discovery(out, "pd-demo") == out
