"""The chaos scenarios of bench/chaos.py as tests: each run must converge with nothing created twice and
no pod replaced more than its operation requires.

`make test` runs the short form (one run of the scenarios no integration test covers: the watcher killed
during a burst of edits, Temporal stopped mid-upgrade; kill -9 of the worker mid-deploy, mid-upgrade and
mid-failover is in tests/integration/test_durability.py and test_upgrade.py); `make chaos` runs every
scenario RBG_CHAOS_RUNS times (RBG_CHAOS_SCENARIOS=all, or a comma-separated list).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench._common import orchestrated_processes
from bench.chaos import SCENARIOS, run_all
from rbg_flows.sim.build import ensure_binaries

pytestmark = [pytest.mark.sim, pytest.mark.chaos]

RUNS = int(os.environ.get("RBG_CHAOS_RUNS", "1"))
_ASKED = os.environ.get("RBG_CHAOS_SCENARIOS", "kill-watcher-burst,pause-temporal-upgrade")
ASKED = list(SCENARIOS) if _ASKED == "all" else [s for s in _ASKED.split(",") if s]


@pytest.fixture(scope="module")
async def chaos_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Any, Any]]:
    """A sim, a Temporal dev server and the real worker and watcher of their own: these tests kill them."""
    ensure_binaries(with_lws=False)
    base = tmp_path_factory.mktemp("chaos")
    sim_args = ("--no-lws", "--nodes=16", "--ready-delay=1.0")
    # A shorter heartbeat timeout than the default 15 s: a killed worker's activities are retried sooner.
    async with orchestrated_processes(base, None, *sim_args, worker_args=("--heartbeat-timeout=5",)) as (
        kube,
        _env,
        orch,
    ):
        yield kube, orch


@pytest.mark.parametrize("scenario", ASKED)
async def test_the_scenario_converges_with_nothing_lost_or_done_twice(
    chaos_cluster: tuple[Any, Any], scenario: str
) -> None:
    kube, orch = chaos_cluster
    (row,) = await run_all(kube, orch, [scenario], RUNS, seed=7)
    print(row)
    assert row["converged"] == row["runs"] == RUNS, row
    assert row["duplicates"] == 0, row
    assert row["max_pod_churn"] == 0, row
