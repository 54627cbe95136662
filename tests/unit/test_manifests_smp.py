"""Strategic merge patch of pod templates, checked against kubectl (the Go implementation) as oracle."""

from __future__ import annotations

import copy
import glob
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rbg_flows.manifests import PatchError, strategic_merge_patch

BASE: dict[str, Any] = {
    "metadata": {
        "labels": {"app": "sglang", "tier": "engine"},
        "annotations": {"prometheus.io/scrape": "true"},
        # Not usual in a template, but the one merged list of scalars a PodTemplateSpec has.
        "finalizers": ["x", "a", "y"],
    },
    "spec": {
        "nodeSelector": {"nvidia.com/gpu.product": "H100"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "initContainers": [{"name": "fetch-model", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
        "containers": [
            {
                "name": "engine",
                "image": "lmsysorg/sglang:v0.5.4",
                "args": ["--port", "8000"],
                "env": [
                    {"name": "MODEL", "value": "qwen"},
                    {"name": "TP", "value": "8"},
                    {"name": "LOG_LEVEL", "value": "info"},
                ],
                "ports": [
                    {"containerPort": 8000, "name": "http"},
                    {"containerPort": 9000, "name": "metrics"},
                ],
                "resources": {
                    "limits": {"nvidia.com/gpu": "8", "memory": "512Gi"},
                    "requests": {"cpu": "32"},
                },
                "volumeMounts": [
                    {"name": "models", "mountPath": "/models"},
                    {"name": "shm", "mountPath": "/dev/shm"},
                ],
            },
            {"name": "sidecar", "image": "envoy:1.30"},
            {"name": "exporter", "image": "exporter:2"},
        ],
        "volumes": [
            {"name": "models", "hostPath": {"path": "/data/models"}},
            {"name": "shm", "emptyDir": {"medium": "Memory"}},
        ],
        "imagePullSecrets": [{"name": "registry"}],
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule"}
        ],
    },
}

CASES: dict[str, dict[str, Any]] = {
    "override-image": {"spec": {"containers": [{"name": "engine", "image": "lmsysorg/sglang:v0.5.5"}]}},
    "add-env": {"spec": {"containers": [{"name": "engine", "env": [{"name": "NEW", "value": "1"}]}]}},
    "change-env-value": {"spec": {"containers": [{"name": "engine", "env": [{"name": "TP", "value": "4"}]}]}},
    "add-and-change-env": {
        "spec": {
            "containers": [
                {
                    "name": "engine",
                    "env": [{"name": "NEW", "value": "1"}, {"name": "MODEL", "value": "llama"}],
                }
            ]
        }
    },
    "add-container": {"spec": {"containers": [{"name": "router", "image": "router:1"}]}},
    "reorder-existing-containers": {
        "spec": {
            "containers": [{"name": "exporter", "image": "exporter:3"}, {"name": "engine", "image": "e:2"}]
        }
    },
    "delete-container": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}},
    "delete-env-var": {
        "spec": {"containers": [{"name": "engine", "env": [{"name": "TP", "$patch": "delete"}]}]}
    },
    "replace-volumes": {
        "spec": {"volumes": [{"$patch": "replace"}, {"name": "cache", "emptyDir": {}}]},
    },
    "add-volume-and-mount": {
        "spec": {
            "volumes": [{"name": "cache", "emptyDir": {}}],
            "containers": [{"name": "engine", "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
        }
    },
    "change-mount-by-path": {
        "spec": {
            "containers": [{"name": "engine", "volumeMounts": [{"mountPath": "/models", "readOnly": True}]}]
        }
    },
    "change-resources": {
        "spec": {
            "containers": [
                {"name": "engine", "resources": {"limits": {"nvidia.com/gpu": "4", "memory": None}}}
            ]
        }
    },
    "replace-args": {"spec": {"containers": [{"name": "engine", "args": ["--port", "8001", "--tp", "4"]}]}},
    "tolerations-replace": {
        "spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm"}]}
    },
    "node-selector-merge": {"spec": {"nodeSelector": {"topology.kubernetes.io/zone": "a"}}},
    "label-merge-and-delete": {"metadata": {"labels": {"role": "leader", "tier": None}}},
    "null-deletes-key": {"spec": {"nodeSelector": None, "tolerations": None}},
    "add-port": {
        "spec": {"containers": [{"name": "engine", "ports": [{"containerPort": 5000, "name": "nccl"}]}]}
    },
    "replace-container-map": {
        "spec": {"containers": [{"name": "sidecar", "$patch": "replace", "image": "x:1"}]}
    },
    "delete-map": {"spec": {"affinity": {"$patch": "delete"}, "securityContext": {"runAsUser": 1000}}},
    "replace-resources-map": {
        "spec": {
            "containers": [{"name": "engine", "resources": {"$patch": "replace", "limits": {"cpu": "2"}}}]
        }
    },
    "topology-spread-by-key": {
        "spec": {
            "topologySpreadConstraints": [
                {
                    "maxSkew": 2,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                },
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                },
            ]
        }
    },
    "init-container-patch": {"spec": {"initContainers": [{"name": "fetch-model", "image": "busybox:1.37"}]}},
    "new-list-with-directives": {
        "spec": {
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}, {"ip": "10.0.0.2", "$patch": "delete"}]
        }
    },
    "retain-keys": {
        "spec": {"volumes": [{"name": "models", "$retainKeys": ["name", "emptyDir"], "emptyDir": {}}]}
    },
    "set-element-order": {
        "spec": {
            "$setElementOrder/containers": [{"name": "exporter"}, {"name": "engine"}, {"name": "sidecar"}],
            "containers": [{"name": "exporter", "image": "exporter:3"}],
        }
    },
    "delete-from-primitive-list": {
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "finalizers": ["z"]}
    },
    "merge-primitive-list": {"metadata": {"finalizers": ["b", "a", "c"]}},
    "delete-existing-map": {"spec": {"nodeSelector": {"$patch": "delete"}}},
    "new-container-with-null": {
        "spec": {
            "containers": [{"name": "new", "image": "x", "args": None, "env": [{"name": "A", "value": "1"}]}]
        }
    },
    "whole-template-replace": {"$patch": "replace", "spec": {"containers": [{"name": "only", "image": "x"}]}},
}


def _kubectl() -> str | None:
    found = sorted(glob.glob(os.path.expanduser("~/.cache/rbg-flows/k8s-*/bin/kubectl")))
    return found[-1] if found else shutil.which("kubectl")


def _kubectl_patch(
    kubectl: str, tmp_path: Path, base: dict[str, Any], patch: dict[str, Any]
) -> dict[str, Any]:
    doc = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": base}
    # JSON, not YAML: Go's YAML 1.1 would read a finalizer "y" as true.
    path = tmp_path / "base.json"
    path.write_text(json.dumps(doc))
    # --kubeconfig /dev/null: a local patch must not depend on (or talk to) any cluster.
    options = ["-p", json.dumps({"template": patch}), "--kubeconfig", os.devnull, "-o", "json"]
    result = subprocess.run(
        [kubectl, "patch", "--local", "-f", str(path), "--type", "strategic", *options],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    template: dict[str, Any] = json.loads(result.stdout).get("template", {})
    return template


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_kubectl(name: str, tmp_path: Path) -> None:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("kubectl not found (the sim cache provides one)")
    expected = _kubectl_patch(kubectl, tmp_path, BASE, CASES[name])
    assert strategic_merge_patch(BASE, CASES[name]) == expected


def test_inputs_are_not_modified() -> None:
    base, patch = copy.deepcopy(BASE), copy.deepcopy(CASES["add-and-change-env"])
    strategic_merge_patch(base, patch)
    assert base == BASE
    assert patch == CASES["add-and-change-env"]


def test_empty_patch_is_a_copy() -> None:
    out = strategic_merge_patch(BASE, None)
    assert out == BASE
    assert out is not BASE
    assert out["spec"] is not BASE["spec"]


def test_new_items_go_before_the_remaining_originals() -> None:
    # What kubectl does, and what users of templatePatch see in the RBG reference.
    out = strategic_merge_patch(BASE, CASES["add-env"])
    assert [e["name"] for e in out["spec"]["containers"][0]["env"]] == ["NEW", "MODEL", "TP", "LOG_LEVEL"]


@pytest.mark.parametrize(
    "patch",
    [
        {"spec": {"containers": [{"image": "no-name"}]}},
        {"spec": {"containers": [{"$patch": "delete"}]}},
        {"spec": {"containers": [{"name": "engine", "$patch": "bogus"}]}},
        {"spec": {"nodeSelector": {"$patch": "merge"}}},
        {"spec": {"volumes": [{"name": "models", "$retainKeys": ["name"], "emptyDir": {}}]}},
    ],
)
def test_invalid_patches_are_refused(patch: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(PatchError):
        strategic_merge_patch(BASE, patch)
    kubectl = _kubectl()
    if kubectl is not None:
        with pytest.raises(subprocess.CalledProcessError):
            _kubectl_patch(kubectl, tmp_path, BASE, patch)
