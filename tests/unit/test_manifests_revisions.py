"""ControllerRevisions: names, numbering, what they record and which are pruned."""

from __future__ import annotations

from typing import Any

from rbg_flows.api import RoleBasedGroup
from rbg_flows.manifests.revisions import build_controller_revision, next_revision, to_prune


def group(replicas: int = 2, image: str = "engine:1") -> RoleBasedGroup:
    return RoleBasedGroup.model_validate(
        {
            "apiVersion": "workloads.x-k8s.io/v1alpha1",
            "kind": "RoleBasedGroup",
            "metadata": {"name": "g", "namespace": "ns", "uid": "u1"},
            "spec": {
                "roles": [
                    {
                        "name": "prefill",
                        "replicas": replicas,
                        "template": {"spec": {"containers": [{"name": "c", "image": image}]}},
                    }
                ]
            },
        }
    )


def rev(name: str, number: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "revision": number}


def test_scaling_does_not_change_the_revision_but_a_template_change_does() -> None:
    a = build_controller_revision(group(2), 1)
    b = build_controller_revision(group(5), 1)
    c = build_controller_revision(group(2, image="engine:2"), 2)
    assert a["metadata"]["name"] == b["metadata"]["name"]
    assert a["metadata"]["name"] != c["metadata"]["name"]
    assert a["metadata"]["name"].startswith("g-")
    labels = a["metadata"]["labels"]
    assert labels["rolebasedgroup.workloads.x-k8s.io/name"] == "g"
    assert (
        a["metadata"]["name"] == "g-" + labels["rolebasedgroup.workloads.x-k8s.io/controller-revision-hash"]
    )
    assert a["metadata"]["ownerReferences"][0]["uid"] == "u1"
    assert "replicas" not in a["data"]["spec"]["roles"][0]  # a rollback keeps the current scale
    assert c["revision"] == 2


def test_numbers_go_up_and_only_the_oldest_beyond_ten_are_pruned() -> None:
    existing = [rev(f"g-{i}", i) for i in range(1, 13)]
    assert next_revision(existing) == 13
    assert next_revision([]) == 1
    assert sorted(to_prune(existing, keep_name="g-12")) == ["g-1", "g-2"]
    # The revision in use survives even when it is old (e.g. after a rollback to it).
    assert "g-1" not in to_prune(existing, keep_name="g-1")
