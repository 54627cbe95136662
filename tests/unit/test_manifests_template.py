"""Role pod templates: inline, templateRef + templatePatch, LeaderWorkerSet leader/worker patches."""

from __future__ import annotations

from typing import Any

import pytest

from rbg_flows.api import RoleBasedGroup
from rbg_flows.manifests import build_statefulset, leader_worker_templates, resolve_pod_template
from tests.unit.test_manifests_examples import NAMESPACE, UID, lws_rbg, pd_rbg

SHARED_TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "sglang"}},
    "spec": {
        "containers": [
            {
                "name": "engine",
                "image": "lmsysorg/sglang:v0.5.4",
                "env": [{"name": "MODEL", "value": "qwen"}],
                "resources": {"limits": {"nvidia.com/gpu": "1"}},
            }
        ]
    },
}


def templated_rbg(patch: dict[str, Any] | None) -> RoleBasedGroup:
    role: dict[str, Any] = {"name": "prefill", "replicas": 2, "templateRef": {"name": "engine"}}
    if patch is not None:
        role["templatePatch"] = patch
    return RoleBasedGroup.model_validate(
        {
            "metadata": {"name": "tpl", "namespace": NAMESPACE, "uid": UID},
            "spec": {"roleTemplates": [{"name": "engine", "template": SHARED_TEMPLATE}], "roles": [role]},
        }
    )


def test_inline_template_is_returned_as_a_copy() -> None:
    rbg = pd_rbg()
    role = rbg.spec.role("prefill")
    template = resolve_pod_template(rbg.spec, role)
    assert template == role.template
    template["spec"]["containers"][0]["image"] = "changed"
    assert role.template is not None
    assert role.template["spec"]["containers"][0]["image"] == "lmsysorg/sglang:v0.5.4"


def test_template_ref_without_patch_is_the_shared_template() -> None:
    rbg = templated_rbg(None)
    assert resolve_pod_template(rbg.spec, rbg.spec.role("prefill")) == SHARED_TEMPLATE


def test_template_ref_with_patch() -> None:
    patch = {
        "metadata": {"labels": {"stage": "prefill"}},
        "spec": {
            "containers": [
                {
                    "name": "engine",
                    "args": ["--disaggregation-mode", "prefill"],
                    "env": [{"name": "TP", "value": "2"}],
                }
            ]
        },
    }
    rbg = templated_rbg(patch)
    template = resolve_pod_template(rbg.spec, rbg.spec.role("prefill"))
    assert template["metadata"]["labels"] == {"app": "sglang", "stage": "prefill"}
    engine = template["spec"]["containers"][0]
    assert engine["image"] == "lmsysorg/sglang:v0.5.4"
    assert engine["args"] == ["--disaggregation-mode", "prefill"]
    assert engine["env"] == [{"name": "TP", "value": "2"}, {"name": "MODEL", "value": "qwen"}]
    # The shared template itself is untouched.
    assert rbg.spec.role_templates[0].template == SHARED_TEMPLATE

    sts = build_statefulset(rbg, rbg.spec.role("prefill"))
    built = sts["spec"]["template"]
    assert built["metadata"]["labels"]["stage"] == "prefill"
    assert built["spec"]["containers"][0]["args"] == ["--disaggregation-mode", "prefill"]


def test_unknown_template_ref_is_a_key_error() -> None:
    rbg = templated_rbg(None)
    rbg.spec.role_templates.clear()
    with pytest.raises(KeyError):
        resolve_pod_template(rbg.spec, rbg.spec.role("prefill"))


def test_leader_and_worker_patches() -> None:
    rbg = lws_rbg()
    leader, worker = leader_worker_templates(rbg.spec, rbg.spec.role("prefill"))
    assert leader["metadata"]["labels"] == {"lws-role": "leader"}
    assert "metadata" not in worker
    assert leader["spec"]["containers"][0]["args"][-1] == "leader"
    assert worker["spec"]["containers"][0]["args"][-1] == "worker"
    for template in (leader, worker):
        assert template["spec"]["containers"][0]["image"] == "lmsysorg/sglang:v0.5.4"
        assert template["spec"]["initContainers"][0]["name"] == "fetch-model"


def test_lws_role_without_patches_uses_the_template_twice() -> None:
    rbg = lws_rbg(prefill={"leaderWorkerSet": {"size": 4}})
    role = rbg.spec.role("prefill")
    leader, worker = leader_worker_templates(rbg.spec, role)
    assert leader == worker == role.template
