"""Engine runtime profiles merged into role pods: the reference's merge by name, overrides, every
workload kind, determinism, the revision hash (RollingUpdate only), the NoUpdate pin and the bounds."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.api import RoleBasedGroup
from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.manifests import build_workload, role_revision_hash
from rbg_flows.manifests.engine_runtime import (
    MAX_ENGINE_RUNTIMES,
    MAX_ROLE_PROFILE_BYTES,
    PINNED_ANNOTATION,
    ProfileNotFound,
    choose_profiles,
    group_fingerprints,
    inject_engine_runtimes,
    profile_problems,
    rolling_fingerprints,
)
from rbg_flows.manifests.labels import role_revision_label
from rbg_flows.manifests.revisions import build_controller_revision
from tests.unit.test_manifests_examples import lws_rbg, make_rbg, pd_rbg

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "engine-runtime-profile.yaml"
SIDECAR = {"name": "runtime", "image": "runtime:1", "args": ["--base"], "env": [{"name": "A", "value": "1"}]}


def profile(strategy: str = "RollingUpdate", **spec: Any) -> ClusterEngineRuntimeProfileSpec:
    body = {
        "updateStrategy": strategy,
        "initContainers": [{"name": "init-driver", "image": "driver:1"}],
        "containers": [copy.deepcopy(SIDECAR)],
        "volumes": [{"name": "lib", "emptyDir": {}}],
        **spec,
    }
    return ClusterEngineRuntimeProfileSpec.model_validate(body)


def with_runtime(rbg_fn: Any = pd_rbg, role: str = "prefill", **runtime: Any) -> RoleBasedGroup:
    return rbg_fn(**{role: {"engineRuntimes": [{"profileName": "rt", **runtime}]}})  # type: ignore[no-any-return]


def containers(template: dict[str, Any], key: str = "containers") -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in template["spec"].get(key) or []}


def test_profile_containers_init_containers_and_volumes_are_appended() -> None:
    rbg = with_runtime()
    sts = build_workload(rbg, rbg.spec.role("prefill"), profiles={"rt": profile()})
    template = sts["spec"]["template"]
    assert [c["name"] for c in template["spec"]["containers"]] == ["engine", "runtime"]
    assert [c["name"] for c in template["spec"]["initContainers"]] == ["init-driver"]
    assert "lib" in {v["name"] for v in template["spec"]["volumes"]}
    # The sidecar gets the group's environment (as the reference's order does) ...
    env = [v["name"] for v in containers(template)["runtime"]["env"]]
    assert env[:2] == ["GROUP_NAME", "ROLE_NAME"] and env[-1] == "A"
    # ... and, as in the reference, not the discovery mount, which is in place before it is added.
    assert "volumeMounts" not in containers(template)["runtime"]
    assert containers(template)["engine"]["volumeMounts"]


def test_the_roles_own_container_volume_and_init_container_win_by_name() -> None:
    rbg = pd_rbg(
        prefill={
            "engineRuntimes": [{"profileName": "rt"}],
            "template": {
                "spec": {
                    "initContainers": [{"name": "init-driver", "image": "mine:1"}],
                    "containers": [{"name": "engine", "image": "e"}, {"name": "runtime", "image": "mine:2"}],
                    "volumes": [{"name": "lib", "hostPath": {"path": "/lib"}}],
                }
            },
        }
    )
    template = build_workload(rbg, rbg.spec.role("prefill"), profiles={"rt": profile()})["spec"]["template"]
    assert containers(template)["runtime"]["image"] == "mine:2"
    assert containers(template, "initContainers")["init-driver"]["image"] == "mine:1"
    assert [v for v in template["spec"]["volumes"] if v["name"] == "lib"] == [
        {"name": "lib", "hostPath": {"path": "/lib"}}
    ]


def test_overrides_append_args_merge_env_by_name_and_ignore_the_rest() -> None:
    override = {
        "name": "runtime",
        "image": "ignored:9",
        "command": ["ignored"],
        "args": ["--role-specific"],
        "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}],
    }
    stranger = {"name": "not-in-profile", "args": ["--x"]}
    rbg = with_runtime(containers=[override, stranger], injectContainers=["engine"])
    template = inject_engine_runtimes(
        {"spec": {"containers": [{"name": "engine"}]}},
        "prefill",
        rbg.spec.role("prefill").engine_runtimes,
        {"rt": profile()},
    )
    runtime = containers(template)["runtime"]
    assert runtime["args"] == ["--base", "--role-specific"]
    assert runtime["env"] == [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]
    assert runtime["image"] == "runtime:1" and "command" not in runtime
    assert set(containers(template)) == {"engine", "runtime"}
    # injectContainers has no effect, as in the reference's controller.
    assert containers(template)["engine"] == {"name": "engine"}


def test_first_profile_to_bring_a_name_wins() -> None:
    rbg = pd_rbg(prefill={"engineRuntimes": [{"profileName": "a"}, {"profileName": "b"}]})
    a = profile(containers=[{"name": "runtime", "image": "a:1"}])
    b = profile(containers=[{"name": "runtime", "image": "b:1"}, {"name": "extra", "image": "x"}])
    template = build_workload(rbg, rbg.spec.role("prefill"), profiles={"a": a, "b": b})["spec"]["template"]
    assert containers(template)["runtime"]["image"] == "a:1"
    assert [c["name"] for c in template["spec"]["containers"]] == ["engine", "runtime", "extra"]


def test_building_twice_gives_the_same_objects_and_leaves_inputs_alone() -> None:
    rbg = with_runtime(containers=[{"name": "runtime", "args": ["--x"]}])
    profiles = {"rt": profile()}
    before = copy.deepcopy(profiles["rt"].model_dump())
    role = rbg.spec.role("prefill")
    assert build_workload(rbg, role, profiles=profiles) == build_workload(rbg, role, profiles=profiles)
    assert profiles["rt"].model_dump() == before


def test_every_workload_kind_gets_the_profile() -> None:
    lws = with_runtime(lws_rbg)
    body = build_workload(lws, lws.spec.role("prefill"), profiles={"rt": profile()})
    for side in ("leaderTemplate", "workerTemplate"):
        template = body["spec"]["leaderWorkerTemplate"][side]
        assert "runtime" in containers(template), side
        assert "init-driver" in containers(template, "initContainers"), side
    deploy = with_runtime(role="router")
    template = build_workload(deploy, deploy.spec.role("router"), profiles={"rt": profile()})["spec"][
        "template"
    ]
    assert "runtime" in containers(template)


def test_a_missing_profile_is_not_built_around() -> None:
    rbg = with_runtime()
    with pytest.raises(ProfileNotFound, match='"rt" not found'):
        build_workload(rbg, rbg.spec.role("prefill"), profiles={})


def label(rbg: RoleBasedGroup, role: str, spec: ClusterEngineRuntimeProfileSpec) -> str:
    body = build_workload(rbg, rbg.spec.role(role), profiles={"rt": spec})
    return str(body["metadata"]["labels"][role_revision_label(role)])


def test_the_revision_hash_moves_with_rolling_update_content_only() -> None:
    rbg = with_runtime()
    changed: dict[str, Any] = {"containers": [{**SIDECAR, "image": "runtime:2"}]}
    rolling_old, rolling_new = profile(), profile(**changed)
    assert label(rbg, "prefill", rolling_old) != label(rbg, "prefill", rolling_new)
    # NoUpdate: the content is not in the hash, which is the role's own (as without profiles).
    plain = role_revision_hash(rbg.spec, rbg.spec.role("prefill"))
    assert label(rbg, "prefill", profile("NoUpdate")) == plain
    assert label(rbg, "prefill", profile("NoUpdate", **changed)) == plain
    # A role that does not use the profile keeps its hash.
    decode = rbg.spec.role("decode")
    assert role_revision_hash(rbg.spec, decode, {"rt": "x"}) == role_revision_hash(rbg.spec, decode)
    # The group's revision moves too, for RollingUpdate only.
    names = {
        n: build_controller_revision(rbg, 1, group_fingerprints(rbg, {"rt": p}))["metadata"]["name"]
        for n, p in {"old": rolling_old, "new": rolling_new, "no": profile("NoUpdate", **changed)}.items()
    }
    assert (
        names["old"] != names["new"] and names["no"] == build_controller_revision(rbg, 1)["metadata"]["name"]
    )


def test_rolling_fingerprints_ignore_the_strategy_and_unused_profiles() -> None:
    rbg = with_runtime()
    role = rbg.spec.role("prefill")
    fp = rolling_fingerprints(role, {"rt": profile(), "other": profile()})
    assert list(fp) == ["rt"]
    assert rolling_fingerprints(role, {"rt": profile("NoUpdate")}) == {}


def test_no_update_content_is_pinned_to_the_role_revision() -> None:
    rbg = with_runtime()
    role = rbg.spec.role("prefill")
    old = profile("NoUpdate")
    current = build_workload(rbg, role, profiles={"rt": old})
    recorded = json.loads(current["metadata"]["annotations"][PINNED_ANNOTATION])
    assert recorded["rt"]["containers"][0]["image"] == "runtime:1"
    new = profile("NoUpdate", containers=[{**SIDECAR, "image": "runtime:2"}])
    chosen = choose_profiles(rbg.spec, role, {"rt": new}, current, None)
    assert chosen == {"rt": old}
    assert build_workload(rbg, role, profiles=chosen)["spec"]["template"] == current["spec"]["template"]
    # A new revision of the role (its spec changed) takes the profile as it is now.
    changed = pd_rbg(
        prefill={
            "engineRuntimes": [{"profileName": "rt"}],
            "template": {"spec": {"containers": [{"name": "engine", "image": "engine:2"}]}},
        }
    )
    role2 = changed.spec.role("prefill")
    assert choose_profiles(changed.spec, role2, {"rt": new}, current, None) == {"rt": new}
    # A record that does not parse is rebuilt from the profile.
    broken = copy.deepcopy(current)
    broken["metadata"]["annotations"][PINNED_ANNOTATION] = "{not json"
    assert choose_profiles(rbg.spec, role, {"rt": new}, broken, None) == {"rt": new}
    # A workload not built yet, or built before records: the profile as it is.
    assert choose_profiles(rbg.spec, role, {"rt": new}, None, None) == {"rt": new}


def test_rolling_update_content_is_what_the_operation_intends() -> None:
    rbg = with_runtime()
    role = rbg.spec.role("prefill")
    old, new = profile(), profile(containers=[{**SIDECAR, "image": "runtime:2"}])
    current = build_workload(rbg, role, profiles={"rt": old})
    # Nothing intended (a first deploy), or the change is the one intended (its upgrade): as it is now.
    assert choose_profiles(rbg.spec, role, {"rt": new}, current, None) == {"rt": new}
    intended_new = rolling_fingerprints(role, {"rt": new})
    assert choose_profiles(rbg.spec, role, {"rt": new}, current, intended_new) == {"rt": new}
    # Changed after the operation started (a scale of the old content): what it was built with, so the
    # operation rolls nothing in; the change's own upgrade follows.
    intended_old = rolling_fingerprints(role, {"rt": old})
    chosen = choose_profiles(rbg.spec, role, {"rt": new}, current, intended_old)
    assert chosen == {"rt": old}
    assert build_workload(rbg, role, profiles=chosen) == current


def test_a_deleted_profile_keeps_what_the_workload_was_built_with() -> None:
    rbg = with_runtime()
    role = rbg.spec.role("prefill")
    current = build_workload(rbg, role, profiles={"rt": profile("NoUpdate")})
    assert choose_profiles(rbg.spec, role, {}, current, None) == {"rt": profile("NoUpdate")}


def test_problems_name_the_missing_profile_with_its_path() -> None:
    rbg = pd_rbg(decode={"engineRuntimes": [{"profileName": "here"}, {"profileName": "x"}]})
    problems = profile_problems(rbg, {"here": profile()})
    assert [str(p) for p in problems] == [
        'spec.roles[1].engineRuntimes[1].profileName: ClusterEngineRuntimeProfile "x" not found'
    ]
    invalid = profile_problems(rbg, {"here": profile()}, {"x": "spec.foo: extra"})
    assert [p.message for p in invalid] == ['ClusterEngineRuntimeProfile "x" is invalid: spec.foo: extra']


def test_bounds_of_profiles() -> None:
    many = pd_rbg(prefill={"engineRuntimes": [{"profileName": "rt"}] * (MAX_ENGINE_RUNTIMES + 1)})
    assert [p.path for p in profile_problems(many, {"rt": profile()})] == ["spec.roles[0].engineRuntimes"]
    huge = profile(containers=[{"name": "big", "image": "x", "args": ["a" * MAX_ROLE_PROFILE_BYTES]}])
    problems = profile_problems(with_runtime(), {"rt": huge})
    assert [p.path for p in problems] == ["spec.roles[0].engineRuntimes"]
    assert "bytes together" in problems[0].message


def test_the_example_builds_with_its_profile() -> None:
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    spec = ClusterEngineRuntimeProfileSpec.model_validate(docs[0]["spec"])
    rbg = make_rbg(yaml.safe_dump(docs[1]))
    assert profile_problems(rbg, {"sglang-pd-runtime": spec}) == []
    for role in ("prefill", "decode"):
        template = build_workload(rbg, rbg.spec.role(role), profiles={"sglang-pd-runtime": spec})["spec"][
            "template"
        ]
        runtime = containers(template)["patio-runtime"]
        assert (
            runtime["args"][0].startswith("--instance-info=")
            and f'"worker_type":"{role}"' in runtime["args"][0]
        )
        assert {"name": "SGL_ROUTER_PORT", "value": "8000"} in runtime["env"]
    router = build_workload(rbg, rbg.spec.role("router"), profiles={})["spec"]["template"]
    assert list(containers(router)) == ["scheduler"]


def test_recorded_content_is_taken_under_the_profiles_current_strategy() -> None:
    """A profile built as NoUpdate and switched to RollingUpdate (its content changed too): an operation
    that intends the old content builds it, hashed as RollingUpdate content."""
    rbg = with_runtime()
    role = rbg.spec.role("prefill")
    old = profile("NoUpdate")
    current = build_workload(rbg, role, profiles={"rt": old})
    now = profile(containers=[{**SIDECAR, "image": "runtime:2"}])
    intended = {"rt": rolling_fingerprints(role, {"rt": profile()})["rt"]}
    chosen = choose_profiles(rbg.spec, role, {"rt": now}, current, intended)
    assert chosen["rt"].update_strategy == "RollingUpdate"
    assert chosen["rt"].containers == old.containers
    assert rolling_fingerprints(role, chosen) == intended
