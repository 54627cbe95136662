"""Injected environment: names, order, replacement of user variables, ROLE_INDEX only where pods have
an ordinal, nothing that changes on scale."""

from __future__ import annotations

from typing import Any

from rbg_flows.manifests import build_workload, inject_env, role_env
from tests.unit.test_manifests_examples import lws_rbg, pd_rbg

POD_INDEX = {"valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}}


def names(env: list[dict[str, Any]]) -> list[str]:
    return [var["name"] for var in env]


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_statefulset_env_in_order() -> None:
    rbg = pd_rbg()
    assert role_env("pd-demo", rbg.spec.role("prefill")) == [
        {"name": "GROUP_NAME", "value": "pd-demo"},
        {"name": "ROLE_NAME", "value": "prefill"},
        {"name": "ROLE_INDEX", **POD_INDEX},
        {"name": "RBG_GROUP_NAME", "value": "pd-demo"},
        {"name": "RBG_ROLE_NAME", "value": "prefill"},
        {"name": "RBG_ROLE_INDEX", **POD_INDEX},
    ]


def test_deployment_pods_have_no_index() -> None:
    env = role_env("pd-demo", pd_rbg().spec.role("router"))
    assert names(env) == ["GROUP_NAME", "ROLE_NAME", "RBG_GROUP_NAME", "RBG_ROLE_NAME"]


def test_leaderworkerset_pods_have_an_index() -> None:
    rbg = lws_rbg()
    lws = build_workload(rbg, rbg.spec.role("prefill"))["spec"]["leaderWorkerTemplate"]
    for key in ("leaderTemplate", "workerTemplate"):
        for container in containers(lws[key]):
            assert {"name": "ROLE_INDEX", **POD_INDEX} in container["env"]
            assert {"name": "RBG_ROLE_INDEX", **POD_INDEX} in container["env"]


def test_injected_first_and_user_duplicates_replaced() -> None:
    template: dict[str, Any] = {
        "spec": {
            "initContainers": [
                {"name": "init", "image": "i", "env": [{"name": "ROLE_NAME", "value": "mine"}]}
            ],
            "containers": [
                {
                    "name": "engine",
                    "image": "e",
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "GROUP_NAME", "value": "spoofed"},
                        {"name": "PEER", "value": "$(GROUP_NAME)-$(ROLE_INDEX)"},
                    ],
                },
                {"name": "plain", "image": "p"},
            ],
        }
    }
    env = role_env("pd-demo", pd_rbg().spec.role("prefill"))
    out = inject_env(template, env)
    injected = names(env)
    engine, plain = out["spec"]["containers"]
    assert names(engine["env"]) == [*injected, "A", "PEER"]
    assert engine["env"][0] == {"name": "GROUP_NAME", "value": "pd-demo"}
    assert plain["env"] == env
    assert names(out["spec"]["initContainers"][0]["env"]) == injected
    # The input is left alone.
    assert template["spec"]["containers"][0]["env"][1]["value"] == "spoofed"


def test_every_container_of_every_workload_gets_the_env() -> None:
    for rbg in (pd_rbg(), lws_rbg()):
        for role in rbg.spec.roles:
            workload = build_workload(rbg, role)
            spec = workload["spec"]
            templates = (
                [
                    spec["leaderWorkerTemplate"]["leaderTemplate"],
                    spec["leaderWorkerTemplate"]["workerTemplate"],
                ]
                if workload["kind"] == "LeaderWorkerSet"
                else [spec["template"]]
            )
            for template in templates:
                for container in containers(template):
                    assert names(container["env"])[:2] == ["GROUP_NAME", "ROLE_NAME"], role.name


def test_scaling_does_not_change_pod_templates() -> None:
    for make, role in ((pd_rbg, "prefill"), (pd_rbg, "router"), (lws_rbg, "prefill")):
        small, large = make(), make(**{role: {"replicas": 7}})
        a = build_workload(small, small.spec.role(role))["spec"]
        b = build_workload(large, large.spec.role(role))["spec"]
        assert a.get("template") == b.get("template")
        assert a.get("leaderWorkerTemplate") == b.get("leaderWorkerTemplate")
        assert a["replicas"] != b["replicas"]
