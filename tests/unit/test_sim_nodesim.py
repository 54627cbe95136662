"""The node simulator's Lease renewal interval."""

from __future__ import annotations

import pytest

from rbg_flows.sim.nodesim import NodeSimulatorConfig


@pytest.mark.parametrize("nodes", [1, 18, 100, 200])
def test_small_clusters_renew_at_a_quarter_of_the_lease(nodes: int) -> None:
    assert NodeSimulatorConfig().interval(nodes) == 10.0  # default 40 s lease
    assert NodeSimulatorConfig(lease_duration=20).interval(nodes) == 5.0


def test_large_clusters_renew_less_often_but_within_half_the_lease() -> None:
    cfg = NodeSimulatorConfig(lease_duration=40)
    quarter, half = 10.0, 20.0
    assert quarter < cfg.interval(750) < half
    assert cfg.interval(1000) == half  # a 1,000-node cluster renews at half the lease
    assert cfg.interval(2000) == half
    assert cfg.interval(100_000) == half
    # Never shorter for more nodes.
    sizes = [1, 100, 999, 1000, 1001, 1500, 1999, 2000, 5000]
    values = [cfg.interval(n) for n in sizes]
    assert values == sorted(values)


def test_short_lease_with_1000_nodes_is_slowed_but_capped() -> None:
    cfg = NodeSimulatorConfig(lease_duration=10)
    assert cfg.interval(10) == 2.5
    assert cfg.interval(1000) == 5.0  # slower than a quarter, capped at half the lease


def test_explicit_interval_wins() -> None:
    assert NodeSimulatorConfig(renew_interval=3.0).interval(1) == 3.0
    assert NodeSimulatorConfig(renew_interval=3.0).interval(100_000) == 3.0
