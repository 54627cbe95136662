"""LeaderWorkerSet tests skip, with the reason, on a cluster that cannot run them (instead of timing out)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rbg_flows.sim.build import ensure_binaries

from .conftest import SimCluster, leaderworkerset_missing, start_sim

pytestmark = pytest.mark.sim


def test_the_lws_probe_tells_a_cluster_without_a_controller_apart(sim: SimCluster, tmp_path: Path) -> None:
    if sim.external:
        pytest.skip("starts a sim of its own")
    assert leaderworkerset_missing(sim) is None  # the session's sim runs the controller
    lws_dir = ensure_binaries().lws_dir
    assert lws_dir is not None
    proc, kubeconfig = start_sim(tmp_path, "--no-lws", "--ready-delay=0.2")
    try:
        bare = SimCluster(kubeconfig, sim.kubectl, True, {}, None, None)
        assert leaderworkerset_missing(bare) == "the cluster does not serve leaderworkerset.x-k8s.io/v1"
        # The API without a controller: objects are accepted and nothing acts on them.
        bare.kubectl_run("apply", "--server-side", "-f", str(lws_dir / "crd.yaml"))
        # Served once the CRD is Established; `kubectl wait` right after the create fails on a CRD whose
        # status has no conditions yet, so poll the discovery endpoint instead.
        deadline = time.monotonic() + 120
        while bare.kubectl_run("get", "--raw", "/apis/leaderworkerset.x-k8s.io/v1", check=False).returncode:
            assert time.monotonic() < deadline, "the LeaderWorkerSet CRD was never served"
            time.sleep(0.2)
        reason = leaderworkerset_missing(bare, timeout=5)
        assert reason and reason.startswith("no LeaderWorkerSet controller"), reason
    finally:
        proc.stop()
