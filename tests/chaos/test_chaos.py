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

import pytest

from bench.chaos import SCENARIOS, Cluster, chaos_cluster, run_all
from rbg_flows.sim.build import ensure_binaries

pytestmark = [pytest.mark.sim, pytest.mark.chaos]

RUNS = int(os.environ.get("RBG_CHAOS_RUNS", "1"))
_ASKED = os.environ.get("RBG_CHAOS_SCENARIOS", "kill-watcher-burst,pause-temporal-upgrade")
ASKED = list(SCENARIOS) if _ASKED == "all" else [s for s in _ASKED.split(",") if s]


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """A sim, a Temporal dev server and the real worker and watcher of their own: these tests kill them."""
    ensure_binaries(with_lws=False)
    # A shorter heartbeat timeout than the default 15 s: a killed worker's activities are retried sooner.
    async with chaos_cluster(tmp_path_factory.mktemp("chaos"), None, ("--heartbeat-timeout=5",)) as c:
        yield c


@pytest.mark.parametrize("scenario", ASKED)
async def test_the_scenario_converges_with_nothing_lost_or_done_twice(
    cluster: Cluster, scenario: str
) -> None:
    (row,) = await run_all(cluster, [scenario], RUNS, seed=7)
    print(row)
    assert row["converged"] == row["runs"] == RUNS, row
    assert row["duplicates"] == 0, row
    assert row["max_pod_churn"] == 0, row
