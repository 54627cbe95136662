"""Reading a workload's progress from its status."""

from __future__ import annotations

from typing import Any

from rbg_flows.api import DEPLOYMENT, LEADERWORKERSET, STATEFULSET
from rbg_flows.kube.kinds import KINDS
from rbg_flows.rollout.readiness import readiness


def sts(
    gen: int = 1,
    observed: int = 1,
    replicas: int = 2,
    ready: int = 2,
    updated: int = 2,
    available: int = 2,
    current: str = "r1",
    update: str = "r1",
) -> dict[str, Any]:
    return {
        "metadata": {"generation": gen},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "currentRevision": current,
            "updateRevision": update,
        },
    }


def test_missing_workload_is_not_ready() -> None:
    r = readiness(STATEFULSET, None, 3, 1)
    assert (r.replicas, r.ready, r.done) == (3, 0, False)


def test_statefulset_done_only_when_observed_and_all_ready_on_one_revision() -> None:
    assert readiness(STATEFULSET, sts(), 2, 1).done
    assert not readiness(STATEFULSET, sts(gen=2, observed=1), 2, 1).done  # our change not yet seen
    assert not readiness(STATEFULSET, sts(), 2, 2).done  # older than the generation we applied
    assert not readiness(STATEFULSET, sts(update="r2"), 2, 1).done  # still rolling
    assert not readiness(STATEFULSET, sts(ready=1), 2, 1).done
    assert not readiness(STATEFULSET, sts(replicas=3), 2, 1).done  # scaling down still has an extra pod


def test_available_caps_ready_for_min_ready_seconds() -> None:
    r = readiness(STATEFULSET, sts(available=1), 2, 1)
    assert r.ready == 1 and not r.done
    d = readiness(
        DEPLOYMENT,
        {
            "metadata": {"generation": 1},
            "status": {
                "observedGeneration": 1,
                "replicas": 2,
                "readyReplicas": 2,
                "updatedReplicas": 2,
                "availableReplicas": 2,
            },
        },
        2,
        1,
    )
    assert d.done


def test_lws_counts_groups() -> None:
    obj = {
        "metadata": {"generation": 1},
        "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 2},
    }
    r = readiness(LEADERWORKERSET, obj, 2, 1)
    assert (r.ready, r.updated, r.done) == (1, 2, False)


def test_api_paths() -> None:
    assert KINDS[STATEFULSET].path("ns", "a") == "/apis/apps/v1/namespaces/ns/statefulsets/a"
    assert (
        KINDS[LEADERWORKERSET].collection("ns")
        == "/apis/leaderworkerset.x-k8s.io/v1/namespaces/ns/leaderworkersets"
    )


def test_a_pod_runs_a_template_when_its_containers_match_image_command_and_args() -> None:
    from rbg_flows.rollout.readiness import runs_template

    template = {"spec": {"containers": [{"name": "e", "image": "x:2", "args": ["--a"]}]}}
    pod = {"spec": {"containers": [{"name": "e", "image": "x:2", "args": ["--a"], "env": [{"name": "LWS"}]}]}}
    assert runs_template(pod, template)
    assert not runs_template(
        {"spec": {"containers": [{"name": "e", "image": "x:1", "args": ["--a"]}]}}, template
    )
    assert not runs_template({"spec": {"containers": [{"name": "other", "image": "x:2"}]}}, template)
    assert runs_template(pod, {"spec": {"containers": [{"name": "e"}]}})  # nothing set: nothing to differ
