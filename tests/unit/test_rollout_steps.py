"""The pure parts of an upgrade: classification, units and stages, partitions, the hold rule, pods on
the target revision, the rollback spec, and the outside observer used by tests and the benchmark."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from rbg_flows.activities.rollout import hold_partition, pods_on_target, rewritten_spec
from rbg_flows.api import parse_rbg
from rbg_flows.rollout.classify import changed_roles, classify, fingerprint, upgrade_replicas
from rbg_flows.rollout.observer import RolloutObserver, pod_images
from rbg_flows.rollout.partition import partition_for, updated_at
from rbg_flows.rollout.units import lock_step_units, rollout_stages

BASE: dict[str, Any] = {
    "apiVersion": "workloads.x-k8s.io/v1alpha1",
    "kind": "RoleBasedGroup",
    "metadata": {"name": "g", "namespace": "ns"},
    "spec": {
        "roles": [
            {
                "name": n,
                "replicas": 2,
                "template": {"spec": {"containers": [{"name": "c", "image": f"{n}:1"}]}},
            }
            for n in ("router", "prefill", "decode", "cache")
        ]
    },
}


def obj(**changes: Any) -> dict[str, Any]:
    o = copy.deepcopy(BASE)
    for role in o["spec"]["roles"]:
        if role["name"] in changes:
            image, replicas = changes[role["name"]]
            if image:
                role["template"]["spec"]["containers"][0]["image"] = image
            if replicas is not None:
                role["replicas"] = replicas
    return o


def test_classification_upgrade_scale_both_and_nothing_to_compare() -> None:
    base = fingerprint(obj())
    assert classify(None, base) == "deploy"
    assert classify(base, None) == "deploy"  # an invalid spec: Deploy refuses it with the field path
    assert classify(base, fingerprint(obj())) == "deploy"  # nothing changed: a cheap re-apply
    scaled = fingerprint(obj(decode=(None, 5)))
    assert classify(base, scaled) == "scale"
    upgraded = fingerprint(obj(prefill=("prefill:2", None)))
    assert classify(base, upgraded) == "upgrade"
    assert base is not None and upgraded is not None
    assert changed_roles(base, upgraded) == ["prefill"]
    both = fingerprint(obj(prefill=("prefill:2", 3)))
    assert both is not None and classify(base, both) == "upgrade"
    # Upgrade first at the old replicas; the scale follows.
    assert upgrade_replicas(base, both) == {"router": 2, "prefill": 2, "decode": 2, "cache": 2}


def test_a_spec_that_does_not_validate_has_no_fingerprint() -> None:
    bad = obj()
    bad["spec"]["roles"][1]["dependencies"] = ["ghost"]
    assert fingerprint(bad) is None


def spec_with(coordination: list[dict[str, Any]], order: list[str] | None = None) -> Any:
    o = obj()
    o["spec"]["coordination"] = coordination
    if order is not None:
        o["spec"]["rolloutOrder"] = order
    rbg, errors = parse_rbg(o)
    assert rbg is not None and not errors, errors
    return rbg.spec


def rule(name: str, *roles: str) -> dict[str, Any]:
    return {"name": name, "roles": list(roles), "strategy": {"rollingUpdate": {"maxSkew": "25%"}}}


def test_units_join_roles_linked_by_lock_step_rules_transitively() -> None:
    spec = spec_with([rule("a", "prefill", "decode"), rule("b", "decode", "cache")])
    assert lock_step_units(spec, ["router", "prefill", "decode", "cache"]) == [
        ("router",),
        ("prefill", "decode", "cache"),
    ]
    # Only the roles that roll count: without decode rolling, nothing binds prefill to cache.
    assert lock_step_units(spec, ["cache", "prefill"]) == [("prefill",), ("cache",)]
    assert lock_step_units(spec, ["cache", "decode"]) == [("decode", "cache")]


def test_a_scaling_only_rule_does_not_join_roles() -> None:
    scaling = {"name": "s", "roles": ["prefill", "decode"], "strategy": {"scaling": {"maxSkew": "10%"}}}
    assert lock_step_units(spec_with([scaling]), ["prefill", "decode"]) == [("prefill",), ("decode",)]


def test_stages_follow_rollout_order_and_reverse_for_rollback() -> None:
    spec = spec_with([rule("a", "prefill", "decode")], order=["cache", "decode", "router"])
    roles = ["router", "prefill", "decode", "cache"]
    assert rollout_stages(spec, roles) == [[("cache",)], [("prefill", "decode")], [("router",)]]
    assert rollout_stages(spec, roles, reverse=True) == [[("router",)], [("prefill", "decode")], [("cache",)]]
    # Without an order every unit rolls at once.
    assert rollout_stages(spec_with([]), ["decode", "router"]) == [[("router",), ("decode",)]]
    assert rollout_stages(spec_with([]), []) == []


def test_roles_missing_from_rollout_order_follow_in_spec_order() -> None:
    spec = spec_with([], order=["decode"])
    assert rollout_stages(spec, ["router", "decode", "cache"]) == [[("decode",)], [("router",)], [("cache",)]]


def test_partition_moves_the_highest_ordinals_and_counts_pods_already_on_target() -> None:
    assert updated_at([False] * 4, 4) == 0
    assert partition_for([False] * 4, 2) == 2
    assert partition_for([False] * 4, 0) == 4
    # After an abort the low ordinals already run the target: they count without moving.
    on = [True, True, False, False]
    assert partition_for(on, 2) == 4
    assert partition_for(on, 3) == 3
    assert partition_for(on, 4) == 0  # ordinals 0 and 1 already run it: the controller leaves them
    assert partition_for([False] * 4, 4, floor=1) == 1  # never below the user's partition


@given(st.lists(st.booleans(), max_size=12), st.data())
def test_partition_for_gives_exactly_the_wanted_count(on: list[bool], data: st.DataObject) -> None:
    n = len(on)
    floor = data.draw(st.integers(0, n))
    want = data.draw(st.integers(sum(on), max(sum(on), updated_at(on, floor))))
    p = partition_for(on, want, floor)
    assert floor <= p <= n
    assert updated_at(on, p) == want
    # The smallest such partition, so no pod already on target below it is counted twice.
    assert p == floor or updated_at(on, p - 1) > want


def sts(
    partition: int, replicas: int, current: str, update: str, updated: int, role_hash: str
) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"h": role_hash}},
        "spec": {"replicas": replicas, "updateStrategy": {"rollingUpdate": {"partition": partition}}},
        "status": {"currentRevision": current, "updateRevision": update, "updatedReplicas": updated},
    }


def test_hold_keeps_a_resumed_or_retargeted_rollout_where_it_is_and_freezes_one_at_rest() -> None:
    at_rest = sts(0, 4, "r1", "r1", 4, "old")
    assert hold_partition(at_rest, "new", "h", 4, 0) == 4
    resumed = sts(2, 4, "r1", "r2", 2, "new")
    assert hold_partition(resumed, "new", "h", 4, 0) == 2
    retargeted = sts(2, 4, "r1", "r2", 2, "mid")
    assert hold_partition(retargeted, "newest", "h", 4, 0) == 2
    assert hold_partition(resumed, "new", "h", 4, 3) == 3  # the user's partition is a floor
    assert hold_partition(None, "new", "h", 4, 1) == 1
    # Settled with a user partition: the pods below it keep the old revision, so the StatefulSet's
    # revisions differ for good; that is rest, not a rollout in flight (all held, nothing moves natively).
    settled_with_floor = sts(2, 4, "r1", "r2", 2, "old")
    assert hold_partition(settled_with_floor, "new", "h", 4, 2) == 4


def test_step_target_counts_progress_above_the_floor_and_moves_nothing_below_it() -> None:
    from rbg_flows.rollout.partition import step_target

    # Floor 2; ordinals 0-1 already on the target (they stay as they are), 2-3 not.
    on = [True, True, False, False]
    assert step_target(on, 2, 0) == (4, 2)  # nothing above the floor yet: all held, 2 on target in all
    assert step_target(on, 2, 1) == (3, 3)
    assert step_target(on, 2, 2) == (2, 4)
    assert step_target([False] * 4, 0, 2) == (2, 2)


def pod(i: int, revision: str, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"g-r-{i}",
        "labels": {"apps.kubernetes.io/pod-index": str(i), "controller-revision-hash": revision},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": meta,
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_pods_on_target_by_ordinal_ignoring_surge_and_terminating_pods() -> None:
    s = {"status": {"updateRevision": "r2"}}
    pods = [pod(0, "r1"), pod(1, "r2", ready=False), pod(2, "r2"), pod(3, "r2", deleting=True), pod(4, "r2")]
    assert pods_on_target(s, pods, 4) == ([False, True, True, False], 1)


def test_rollback_spec_takes_the_revision_with_current_replicas() -> None:
    current = {"roles": [{"name": "a", "replicas": 5, "x": 2}], "rolloutOrder": ["a"]}
    revision = {"roles": [{"name": "a", "x": 1}, {"name": "b", "x": 1}]}
    assert rewritten_spec(current, revision) == {
        "roles": [{"name": "a", "x": 1, "replicas": 5}, {"name": "b", "x": 1}]
    }
    assert revision == {"roles": [{"name": "a", "x": 1}, {"name": "b", "x": 1}]}  # not modified


def watched(name: str, uid: str, role: str, image: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "uid": uid,
        "labels": {"rolebasedgroup.workloads.x-k8s.io/role": role},
    }
    if deleting:
        meta["deletionTimestamp"] = "x"
    return {"metadata": meta, "spec": {"containers": [{"image": image}]}}


def test_observer_samples_skew_at_every_event_and_counts_replacements() -> None:
    obs = RolloutObserver({"a": 2, "b": 2}, lambda p: "v2" in pod_images(p), pairs=[("a", "b")])
    for r in ("a", "b"):
        for i in range(2):
            obs.on_event("ADDED", watched(f"{r}-{i}", f"{r}{i}", r, "v1"))
    obs.on_event("MODIFIED", watched("a-1", "a1", "a", "v1", deleting=True))
    obs.on_event("DELETED", watched("a-1", "a1", "a", "v1"))
    obs.on_event("ADDED", watched("a-1", "a1'", "a", "v2"))
    assert obs.counts() == {"a": 1, "b": 0}
    assert obs.max_skew == 0.5 and obs.worst == {"a": 1, "b": 0}
    obs.on_event("ADDED", watched("b-1", "b1'", "b", "v2"))
    assert obs.replacements("a-1") == 1 and obs.replacements("a-0") == 0
    obs.on_event("ADDED", watched("other", "o", "router", "v2"))  # not an observed role
    assert obs.counts() == {"a": 1, "b": 1}


def test_blocking_pods_are_unready_old_pods_the_statefulset_will_replace_anyway() -> None:
    from rbg_flows.kube.unblock import blocking_pods

    def sts_obj(partition: int, observed: int = 2) -> dict[str, Any]:
        return {
            "metadata": {"generation": 2},
            "spec": {"replicas": 4, "updateStrategy": {"rollingUpdate": {"partition": partition}}},
            "status": {"observedGeneration": observed, "currentRevision": "r1", "updateRevision": "r2"},
        }

    pods = [
        pod(0, "r1", ready=False),  # below the partition: kept where it is
        pod(1, "r1", ready=False),  # old and unready: blocks the rollout
        pod(2, "r1"),  # old but Ready: the StatefulSet replaces it in its own time
        pod(3, "r2", ready=False),  # already new: starting, not ours to touch
        pod(4, "r1", ready=False),  # beyond the replicas (surge or scale-down)
        pod(5, "r1", ready=False, deleting=True),
    ]
    assert [p["metadata"]["name"] for p in blocking_pods(sts_obj(1), pods)] == ["g-r-1"]
    assert blocking_pods(sts_obj(4), pods) == []  # held: nothing moves
    assert blocking_pods(sts_obj(0, observed=1), pods) == []  # the controller has not seen the spec yet
