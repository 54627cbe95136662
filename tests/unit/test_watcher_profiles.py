"""What the watcher makes of ClusterEngineRuntimeProfiles and of the groups that name them (pure)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.messages import ProfileChange, profile_fingerprint
from rbg_flows.watcher.handlers import profile_change, profiles_named
from rbg_flows.watcher.profile_users import ProfileUsers

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "engine-runtime-profile.yaml"
PROFILE, GROUP = (d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d)


def test_the_groups_profiles_are_named_once_in_order() -> None:
    assert profiles_named(GROUP) == ["sglang-pd-runtime"]
    group = copy.deepcopy(GROUP)
    group["spec"]["roles"][0]["engineRuntimes"] = [{"profileName": "b"}, {"profileName": "sglang-pd-runtime"}]
    assert profiles_named(group) == ["b", "sglang-pd-runtime"]
    assert profiles_named({"spec": {"roles": [{"name": "x"}]}}) == []


def test_a_change_carries_the_workers_fingerprint_and_the_strategy() -> None:
    change = profile_change(PROFILE)
    assert change is not None
    assert change.name == "sglang-pd-runtime" and change.update_strategy == "RollingUpdate"
    # The fingerprint the worker computes for the same content: the entity compares the two.
    assert change.fingerprint == profile_fingerprint(
        ClusterEngineRuntimeProfileSpec.model_validate(PROFILE["spec"])
    )
    # The strategy is not content: switching it alone keeps the fingerprint; an image does not.
    other = copy.deepcopy(PROFILE)
    other["spec"]["updateStrategy"] = "NoUpdate"
    assert profile_change(other).fingerprint == change.fingerprint  # type: ignore[union-attr]
    other["spec"]["containers"][0]["image"] = "runtime:2"
    assert profile_change(other).fingerprint != change.fingerprint  # type: ignore[union-attr]


def test_a_profile_that_does_not_parse_is_not_signalled() -> None:
    bad = copy.deepcopy(PROFILE)
    bad["spec"]["updateStrategy"] = "Sometimes"
    assert profile_change(bad) is None


def _change(name: str, fingerprint: str) -> ProfileChange:
    return ProfileChange(name=name, fingerprint=fingerprint, update_strategy="RollingUpdate")


def test_profile_users_tell_a_group_of_what_was_seen_before_it_whichever_came_first() -> None:
    users = ProfileUsers()
    # A profile seen before any group names it: nobody to tell yet, but it is remembered...
    assert users.profile_seen(_change("p", "f1")) == []
    # ...and told to a group when it is first seen naming it (and only what it names).
    assert users.group_seen(("ns", "a"), ["p", "q"]) == [_change("p", "f1")]
    # A later generation naming the same profiles hears nothing again; a newly named one, what is known.
    assert users.group_seen(("ns", "a"), ["p", "q"]) == []
    users.profile_seen(_change("q", "g1"))
    assert users.group_seen(("ns", "b"), ["q"]) == [_change("q", "g1")]
    # A change reaches every group that names the profile, in order; not one that stopped naming it.
    assert users.profile_seen(_change("q", "g2")) == [("ns", "a"), ("ns", "b")]
    users.group_seen(("ns", "a"), ["p"])
    assert users.profile_seen(_change("q", "g3")) == [("ns", "b")]
    users.group_gone(("ns", "b"))
    assert users.profile_seen(_change("q", "g4")) == []
    # A deleted profile is forgotten: a group first seen afterwards is told nothing of it.
    users.profile_gone("p")
    assert users.group_seen(("ns", "c"), ["p"]) == []
