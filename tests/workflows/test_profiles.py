"""The entity and ClusterEngineRuntimeProfile changes, with stand-in activities: a RollingUpdate change is a
coordinated upgrade of the roles using it, a NoUpdate one does nothing, and a group refused for naming a
missing profile deploys once the profile appears."""

from __future__ import annotations

from collections.abc import Callable

from rbg_flows.messages import ProfileChange

from .conftest import Group
from .standins import StandIns

Make = Callable[..., Group]
PROFILE = "runtime"


def using_profile(g: Group, role: str = "prefill") -> Group:
    """The group with `role` naming the profile (before its first apply)."""
    next(r for r in g.obj["spec"]["roles"] if r["name"] == role)["engineRuntimes"] = [
        {"profileName": PROFILE}
    ]
    return g


async def changed(g: Group, standins: StandIns, strategy: str, fingerprint: str) -> None:
    """The profile is now this content in the cluster, and the watcher says so."""
    standins.profiles[PROFILE] = (strategy, fingerprint)
    await g.handle.signal(
        "profile_changed",
        ProfileChange(name=PROFILE, fingerprint=fingerprint, update_strategy=strategy),  # type: ignore[arg-type]
    )


async def test_a_rolling_update_profile_change_upgrades_the_roles_using_it(
    group: Make, standins: StandIns
) -> None:
    standins.profiles[PROFILE] = ("RollingUpdate", "fp-1")
    g = using_profile(group())
    await g.apply()
    s = await g.until("Ready", lambda s: s.phase == "Ready" and s.current is None)
    assert s.profiles == {PROFILE: "fp-1"} and s.current_revision is not None
    first = s.current_revision.revision
    # A first deploy builds the profiles as they are.
    assert set(map(str, standins.calls.built_with)) == {"None"}
    standins.calls.built_with.clear()

    # The watcher's first sight after a restart: the content the group was built with rolls nothing.
    await changed(g, standins, "RollingUpdate", "fp-1")
    await changed(g, standins, "RollingUpdate", "fp-2")
    s = await g.until("upgraded", lambda s: len(s.recent) == 2 and s.current is None)
    upgrade = s.recent[-1]
    assert (upgrade.kind, upgrade.generation, upgrade.outcome) == ("upgrade", 1, "ready")
    assert upgrade.workflow_id.endswith("upgrade.1-2")  # the generation had an operation already
    assert s.profiles == {PROFILE: "fp-2"} and s.phase == "Ready"
    assert s.current_revision is not None and s.current_revision.revision == first + 1
    # Only the role that names the profile rolled; the events are an upgrade's.
    assert [n for n in standins.calls.names if n in ("set_partition", "step_role")]
    assert set(standins.updated) == {"prefill"}
    # Every step of the upgrade builds the content it was classified with, whatever the profile is by then.
    assert standins.calls.built_with and all(p == {PROFILE: "fp-2"} for p in standins.calls.built_with)
    assert standins.calls.events()[-2:] == ["UpgradeStarted", "UpgradeSucceeded"]


async def test_a_no_update_profile_change_starts_nothing(group: Make, standins: StandIns) -> None:
    standins.profiles[PROFILE] = ("NoUpdate", "fp-1")
    g = using_profile(group())
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready" and s.current is None)
    await changed(g, standins, "NoUpdate", "fp-2")
    # A later spec change shows the signal was handled (signals are delivered in order) and rolled nothing.
    await g.apply(lambda spec: next(r for r in spec["roles"] if r["name"] == "decode").update(replicas=3))
    s = await g.until("scaled", lambda s: s.settled_generation == 2 and s.current is None)
    assert [op.kind for op in s.recent] == ["deploy", "scale"]
    assert s.profiles == {} and not s.profiles_pending


async def test_a_group_naming_a_missing_profile_deploys_once_it_exists(
    group: Make, standins: StandIns
) -> None:
    g = using_profile(group())
    await g.apply()
    s = await g.until("refused", lambda s: s.current is None and len(s.recent) == 1)
    assert s.recent[0].outcome == "invalid"
    assert f'ClusterEngineRuntimeProfile "{PROFILE}" not found' in s.recent[0].message
    assert "apply_role" not in standins.calls.names  # nothing created

    await changed(g, standins, "NoUpdate", "fp-1")  # created (even NoUpdate: the group waits for it)
    s = await g.until("deployed", lambda s: s.phase == "Ready" and s.current is None)
    assert [(op.kind, op.outcome) for op in s.recent] == [("deploy", "invalid"), ("deploy", "ready")]
    assert standins.calls.events()[-1] == "DeploySucceeded"


async def test_a_profile_the_group_does_not_use_is_ignored(group: Make, standins: StandIns) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready" and s.current is None)
    await changed(g, standins, "RollingUpdate", "fp-9")
    await g.apply(lambda spec: next(r for r in spec["roles"] if r["name"] == "decode").update(replicas=3))
    s = await g.until("scaled", lambda s: s.settled_generation == 2 and s.current is None)
    assert [op.kind for op in s.recent] == ["deploy", "scale"]


async def test_a_profile_signalled_during_the_first_deploy_with_what_it_built_starts_nothing_more(
    group: Make, standins: StandIns
) -> None:
    """A profile applied together with its group: its first event reaches the entity while the group
    deploys; the deploy built that content, so nothing follows (and the revision hash includes it)."""
    standins.profiles[PROFILE] = ("RollingUpdate", "fp-1")
    gate = standins.hold("prefill")
    g = using_profile(group())
    await g.apply()
    await g.until("deploying", lambda s: s.current is not None and "wait_role" in standins.calls.names)
    await changed(g, standins, "RollingUpdate", "fp-1")
    gate.set()
    s = await g.until("Ready", lambda s: s.phase == "Ready" and s.current is None)
    assert s.profiles == {PROFILE: "fp-1"} and not s.profiles_pending
    await g.apply(lambda spec: next(r for r in spec["roles"] if r["name"] == "decode").update(replicas=3))
    s = await g.until("scaled", lambda s: s.settled_generation == 2 and s.current is None)
    assert [op.kind for op in s.recent] == ["deploy", "scale"]
    # And a change signalled during an operation is rolled after it.
    gate = standins.hold("decode")
    await g.apply(lambda spec: next(r for r in spec["roles"] if r["name"] == "decode").update(replicas=4))
    await g.until("scaling", lambda s: s.current is not None and s.current.generation == 3)
    await changed(g, standins, "RollingUpdate", "fp-2")
    gate.set()
    s = await g.until("upgraded", lambda s: len(s.recent) == 4 and s.current is None)
    assert [op.kind for op in s.recent] == ["deploy", "scale", "scale", "upgrade"]
    assert s.profiles == {PROFILE: "fp-2"} and s.applied is not None
