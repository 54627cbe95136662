"""What the watcher puts into a workflow signal."""

from __future__ import annotations

from rbg_flows.watcher.signaller import spec_event


def test_spec_event_keeps_identity_and_spec_and_drops_noise() -> None:
    body = {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {
            "name": "g",
            "namespace": "ns",
            "uid": "u1",
            "generation": 4,
            "resourceVersion": "99",
            "labels": {"team": "a"},
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "rbg-flows.workloads.x-k8s.io/last-handled-configuration": "{}",
                "keep": "me",
            },
        },
        "spec": {"roles": [{"name": "r"}]},
        "status": {"phase": "Ready"},
    }
    ev = spec_event(body)
    assert (ev.uid, ev.generation) == ("u1", 4)
    assert ev.obj["spec"] == {"roles": [{"name": "r"}]}
    assert ev.obj["metadata"]["annotations"] == {"keep": "me"}
    assert ev.obj["metadata"]["labels"] == {"team": "a"}
    assert "status" not in ev.obj and "managedFields" not in ev.obj["metadata"]
    assert "resourceVersion" not in ev.obj["metadata"]  # changes on every status write: kept out of history
