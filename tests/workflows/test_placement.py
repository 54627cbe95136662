"""The Deploy operation's placement step: only groups that ask take it, a decision reaches every role it
names and the status, and a Required group that fits nowhere is refused before anything is created."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rbg_flows.messages import PlacementChoice, PlacementTerm, RolePlacement

from .conftest import Group
from .standins import StandIns

Make = Callable[..., Group]


def _placement(policy: str) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        spec["placement"] = {"policy": policy, "level": "rdma"}

    return change


async def test_a_group_that_asks_nothing_takes_no_placement_step(group: Make, standins: StandIns) -> None:
    g = group()
    await g.apply()
    await g.until("Ready", lambda s: s.phase == "Ready")
    assert "place" not in standins.calls.names
    assert all(u.placement is None for u in standins.calls.reports)


async def test_the_decision_reaches_the_roles_it_names_and_the_status(
    group: Make, standins: StandIns
) -> None:
    decode = RolePlacement(required=True, terms=[PlacementTerm(key="rbg.x-k8s.io/rdma-block", values=["b1"])])
    standins.placement = PlacementChoice(
        roles={"decode": decode}, status={"tier": "rdma", "domains": {"decode": "rbg.x-k8s.io/rdma-block=b1"}}
    )
    g = group()
    await g.apply(_placement("Required"))
    await g.until("Ready", lambda s: s.phase == "Ready" and s.settled_generation == 2)
    assert standins.calls.names.count("place") == 1
    # Placed before the first workload is applied.
    assert standins.calls.names.index("place") < standins.calls.names.index("apply_role")
    assert standins.placed_roles["decode"] == decode and standins.placed_roles["router"] is None
    started = next(u for u in standins.calls.reports if u.event and u.event.reason == "DeployStarted")
    assert started.placement == {"tier": "rdma", "domains": {"decode": "rbg.x-k8s.io/rdma-block=b1"}}


async def test_a_required_group_that_fits_nowhere_is_refused_before_anything_is_created(
    group: Make, standins: StandIns
) -> None:
    why = "prefill+decode needs 40 GPUs in one rdma-block; the best rdma-block has 32 free"
    standins.placement = PlacementChoice(error=why, status={"message": why})
    g = group()
    await g.apply(_placement("Required"))
    await g.until("refused", lambda s: s.settled_generation == 2)
    assert standins.calls.applied == []
    assert standins.calls.events() == ["Unplaceable"]
    assert ("False", "Unplaceable") in standins.calls.conditions("Progressing")
    (refusal,) = standins.calls.reports
    assert refusal.phase == "Failed" and refusal.placement == {"message": why}
