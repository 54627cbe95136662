"""Label keys, the group-unique-key, selectors and the owner reference."""

from __future__ import annotations

import pytest

from rbg_flows.api import RoleBasedGroup
from rbg_flows.api.keys import CONTROLLER_REVISION_HASH_LABEL, ROLE_SIZE_ANNOTATION
from rbg_flows.manifests import (
    GROUP_NAME_LABEL,
    GROUP_UNIQUE_KEY_LABEL,
    ROLE_LABEL,
    group_labels,
    group_unique_key,
    owner_reference,
    role_labels,
    role_revision_label,
    role_selector,
)
from tests.unit.test_manifests_examples import UID, pd_rbg


def test_label_keys_are_the_reference_ones() -> None:
    assert GROUP_NAME_LABEL == "rolebasedgroup.workloads.x-k8s.io/name"
    assert ROLE_LABEL == "rolebasedgroup.workloads.x-k8s.io/role"
    assert GROUP_UNIQUE_KEY_LABEL == "rolebasedgroup.workloads.x-k8s.io/group-unique-key"
    assert CONTROLLER_REVISION_HASH_LABEL == "rolebasedgroup.workloads.x-k8s.io/controller-revision-hash"
    assert ROLE_SIZE_ANNOTATION == "rolebasedgroup.workloads.x-k8s.io/role-size"
    assert role_revision_label("prefill") == "rolebasedgroup.workloads.x-k8s.io/role-revision-hash-prefill"


def test_group_unique_key_is_sha1_of_namespace_slash_name() -> None:
    # printf 'inference/pd-demo' | sha1sum
    assert group_unique_key("inference", "pd-demo") == "8d383b19e5d64f7b2b90f38939baa2584edc25ee"
    assert group_unique_key("default", "my-rbg") == "ffeb2f1c287f08b5dfe645b7d63a29dd32dc6402"
    assert group_unique_key("other", "pd-demo") != group_unique_key("inference", "pd-demo")


def test_role_labels_and_selectors() -> None:
    rbg = pd_rbg()
    key = "8d383b19e5d64f7b2b90f38939baa2584edc25ee"
    assert role_labels(rbg, rbg.spec.role("prefill")) == {
        GROUP_NAME_LABEL: "pd-demo",
        ROLE_LABEL: "prefill",
        GROUP_UNIQUE_KEY_LABEL: key,
    }
    assert role_selector(rbg, "decode") == {GROUP_NAME_LABEL: "pd-demo", ROLE_LABEL: "decode"}
    assert role_selector(rbg, rbg.spec.role("decode")) == role_selector(rbg, "decode")
    assert group_labels(rbg) == {GROUP_NAME_LABEL: "pd-demo", GROUP_UNIQUE_KEY_LABEL: key}


def test_owner_reference() -> None:
    assert owner_reference(pd_rbg()) == {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "name": "pd-demo",
        "uid": UID,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@pytest.mark.parametrize("missing", ["uid", "namespace", "name"])
def test_objects_need_an_existing_group(missing: str) -> None:
    doc = pd_rbg().model_dump(mode="json")
    del doc["metadata"][missing]
    rbg = RoleBasedGroup.model_validate(doc)
    with pytest.raises(ValueError, match=missing):
        owner_reference(rbg)
