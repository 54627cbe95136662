"""What the watcher puts into a workflow signal."""

from __future__ import annotations

from rbg_flows.watcher.handlers import DELETED_GENERATION, drift_generation, group_owner
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


def test_workload_events_signal_drift_only_for_a_change_or_a_deletion() -> None:
    seen: dict[str, int] = {}
    created = {"uid": "w1", "generation": 1}
    # Created by our apply and unchanged since: nothing to say (and not on a re-list after a restart).
    assert drift_generation("ADDED", created, seen) is None
    assert drift_generation(None, created, seen) is None
    # Changed (by our upgrade or by hand): reported once per generation; the entity tells them apart.
    assert drift_generation("MODIFIED", {**created, "generation": 2}, seen) == 2
    assert drift_generation("MODIFIED", {**created, "generation": 2}, seen) is None
    assert drift_generation(None, {**created, "generation": 2}, seen) is None
    assert drift_generation("MODIFIED", {**created, "generation": 3}, seen) == 3
    # Deleted: always drift (the repair re-creates it), and the memo of it is dropped.
    assert drift_generation("DELETED", {**created, "generation": 3}, seen) == DELETED_GENERATION
    assert "w1" not in seen
    # Re-created under a new uid: generation 1 again, nothing to say.
    assert drift_generation("ADDED", {"uid": "w2", "generation": 1}, seen) is None


def test_only_a_controlling_group_owns_a_workload() -> None:
    ref = {"kind": "RoleBasedGroup", "name": "g", "uid": "u"}
    assert group_owner({"ownerReferences": [{**ref, "controller": True}]}) == {**ref, "controller": True}
    assert group_owner({"ownerReferences": [ref]}) is None
    assert (
        group_owner({"ownerReferences": [{**ref, "kind": "RoleBasedGroupSet", "controller": True}]}) is None
    )
    assert group_owner({}) is None
