"""Role and spec revision hashes: stable, blind to scale, sensitive to exactly the right changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.api import RoleBasedGroup, parse_rbg
from rbg_flows.manifests import role_revision_hash, role_revision_hashes, spec_revision_hash
from rbg_flows.manifests.hashing import fnv1a_32, safe_encode
from tests.unit.test_manifests_examples import LWS_MANIFEST, NAMESPACE, UID, lws_rbg, make_rbg, pd_rbg


def test_fnv_and_safe_encoding_match_kubernetes() -> None:
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968
    assert safe_encode("0123456789") == "456789bcdf"


def test_hashes_are_short_label_values() -> None:
    for value in [*role_revision_hashes(pd_rbg().spec).values(), spec_revision_hash(pd_rbg().spec)]:
        assert 1 <= len(value) <= 10
        assert set(value) <= set("bcdfghjklmnpqrstvwxz2456789")


def test_scaling_changes_no_hash() -> None:
    before, after = pd_rbg(), pd_rbg(prefill={"replicas": 9}, router={"replicas": 0})
    assert role_revision_hashes(before.spec) == role_revision_hashes(after.spec)
    assert spec_revision_hash(before.spec) == spec_revision_hash(after.spec)


def test_a_role_change_changes_only_that_role_hash() -> None:
    before = pd_rbg()
    template = before.spec.role("decode").model_dump(mode="json", by_alias=True)["template"]
    template["spec"]["containers"][0]["image"] = "lmsysorg/sglang:v0.5.5"
    after = pd_rbg(decode={"template": template})
    old, new = role_revision_hashes(before.spec), role_revision_hashes(after.spec)
    assert old["decode"] != new["decode"]
    assert old["prefill"] == new["prefill"]
    assert old["router"] == new["router"]
    assert spec_revision_hash(before.spec) != spec_revision_hash(after.spec)


def test_each_rollout_relevant_field_changes_the_role_hash() -> None:
    base = role_revision_hash(pd_rbg().spec, pd_rbg().spec.role("prefill"))
    changes: list[dict[str, Any]] = [
        {"labels": {"team": "a"}},
        {"annotations": {"note": "x"}},
        {"servicePorts": [{"name": "http", "port": 8001}]},
        {"rolloutStrategy": {"rollingUpdate": {"maxUnavailable": 2}}},
        {"minReadySeconds": 5},
        {"restartPolicy": "RecreateRBGOnPodRestart"},
    ]
    for change in changes:
        rbg = pd_rbg(prefill=change)
        assert role_revision_hash(rbg.spec, rbg.spec.role("prefill")) != base, change


def test_orchestrator_only_fields_do_not_change_the_role_hash() -> None:
    base = pd_rbg()
    rbg = pd_rbg(
        prefill={
            "dependencies": ["decode"],
            "scalingAdapter": {"enable": True},
            "restartPolicyConfig": {"baseDelaySeconds": 5},
        }
    )
    assert role_revision_hash(rbg.spec, rbg.spec.role("prefill")) == role_revision_hash(
        base.spec, base.spec.role("prefill")
    )


def test_defaults_written_out_hash_like_omitted_ones() -> None:
    explicit = {
        "labels": {},
        "workload": {"apiVersion": "apps/v1", "kind": "StatefulSet"},
        "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "minReadySeconds": 0,
        "restartPolicy": "None",
    }
    a, b = pd_rbg(), pd_rbg(prefill=explicit)
    assert role_revision_hash(a.spec, a.spec.role("prefill")) == role_revision_hash(
        b.spec, b.spec.role("prefill")
    )
    lws_default, lws_explicit = (
        lws_rbg(),
        lws_rbg(prefill={"restartPolicy": "RecreateRoleInstanceOnPodRestart"}),
    )
    assert role_revision_hash(lws_default.spec, lws_default.spec.role("prefill")) == role_revision_hash(
        lws_explicit.spec, lws_explicit.spec.role("prefill")
    )


def test_spec_hash_ignores_explicit_defaults() -> None:
    a, b = pd_rbg(), pd_rbg(prefill={"rolloutStrategy": {"rollingUpdate": {"partition": 0}}, "labels": {}})
    assert spec_revision_hash(a.spec) == spec_revision_hash(b.spec)


def test_shared_template_change_changes_the_roles_that_use_it() -> None:
    def rbg(image: str) -> RoleBasedGroup:
        template = {"spec": {"containers": [{"name": "engine", "image": image}]}}
        return RoleBasedGroup.model_validate(
            {
                "metadata": {"name": "tpl", "namespace": NAMESPACE, "uid": UID},
                "spec": {
                    "roleTemplates": [{"name": "engine", "template": template}],
                    "roles": [
                        {"name": "a", "templateRef": {"name": "engine"}},
                        {"name": "b", "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}},
                    ],
                },
            }
        )

    old, new = role_revision_hashes(rbg("v1").spec), role_revision_hashes(rbg("v2").spec)
    assert old["a"] != new["a"]
    assert old["b"] == new["b"]


def test_hashes_are_the_same_in_another_process() -> None:
    code = (
        "from tests.unit.test_manifests_examples import lws_rbg, pd_rbg\n"
        "from rbg_flows.manifests import role_revision_hashes, spec_revision_hash\n"
        "for r in (pd_rbg(), lws_rbg()):\n"
        "    print(sorted(role_revision_hashes(r.spec).items()), spec_revision_hash(r.spec))\n"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            timeout=120,
            check=True,
        )
        outputs.add(result.stdout)
    local = "".join(
        f"{sorted(role_revision_hashes(r.spec).items())} {spec_revision_hash(r.spec)}\n"
        for r in (pd_rbg(), make_rbg(LWS_MANIFEST))
    )
    assert outputs == {local}


# Classification runs inline in workflow code: a change of these values changes what a recorded history
# would do on replay. Changing them is a versioned change of the workflows (docs/architecture.md).
PINNED = {
    "pd-disaggregation.yaml": (
        "7d94b4b587",
        {"prefill": "84b55877f7", "decode": "74677c6689", "router": "6cf5c95546"},
    ),
    "coordinated-upgrade.yaml": (
        "5cd89dbdb8",
        {"prefill": "85f76f586c", "decode": "5dc56f586c", "router": "85bf998dd8"},
    ),
    "dependency-chain.yaml": (
        "6c9b5dddff",
        {"cache": "7fc98f79c7", "engine": "5db67b59", "gateway": "864bd45f9b"},
    ),
}


@pytest.mark.parametrize("example", sorted(PINNED))
def test_example_hashes_are_pinned(example: str) -> None:
    docs = yaml.safe_load_all((Path(__file__).resolve().parents[2] / "examples" / example).read_text())
    obj = next(d for d in docs if d and d.get("kind") == "RoleBasedGroup")
    obj["metadata"].update(namespace="default", uid="u")
    rbg, errors = parse_rbg(obj)
    assert rbg is not None and not errors
    assert (spec_revision_hash(rbg.spec), role_revision_hashes(rbg.spec)) == PINNED[example]
