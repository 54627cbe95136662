"""Start, restart with state kept, and stopping cleanly: also when the parent is killed with SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import SimCluster, start_sim

pytestmark = pytest.mark.sim


def _under(state_dir: Path) -> dict[int, str]:
    """Command lines by PID of the processes that mention the state dir (every component of one sim does)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(state_dir) in cmdline:
                found[int(entry.name)] = cmdline
    return found


def processes_under(state_dir: Path) -> list[int]:
    return list(_under(state_dir))


def commands_under(state_dir: Path) -> list[str]:
    return list(_under(state_dir).values())


def wait_gone(state_dir: Path, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_under(state_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def kubectl(sim: SimCluster, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(sim.kubectl), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def own_sim_dir(sim: SimCluster, tmp_path: Path) -> Path:
    if sim.external:
        pytest.skip("starts sims of its own")
    return tmp_path


def test_restart_keeps_state_and_stop_leaves_no_process(sim: SimCluster, own_sim_dir: Path) -> None:
    proc, kubeconfig = start_sim(own_sim_dir, "--no-lws")
    state = own_sim_dir / "state"
    assert len(processes_under(state)) >= 4  # etcd, apiserver, controller-manager, scheduler (+ python)
    created = kubectl(sim, kubeconfig, "create", "configmap", "survivor", "--from-literal=k=v")
    assert created.returncode == 0, created.stderr
    info = json.loads((state / "sim.json").read_text())
    first = info["apiserver"]
    # The conversion webhook is one of its processes (stopped with it) and keeps its address too: the
    # CRDs stored in etcd name it.
    assert any("webhook" in cmd for cmd in commands_under(state))
    proc.stop(timeout=30)
    assert wait_gone(state) == []
    assert not kubeconfig.exists()  # never left pointing at a stopped cluster

    proc, kubeconfig = start_sim(own_sim_dir, "--no-lws")
    try:
        again = json.loads((state / "sim.json").read_text())
        assert again["apiserver"] == first
        assert again["webhookUrl"] == info["webhookUrl"]
        got = kubectl(sim, kubeconfig, "get", "configmap", "survivor", "-o", "jsonpath={.data.k}")
        assert got.stdout == "v", got.stderr
    finally:
        proc.stop(timeout=30)
    assert wait_gone(state) == []


def test_sigkill_of_the_parent_leaves_no_process(sim: SimCluster, own_sim_dir: Path) -> None:
    proc, _ = start_sim(own_sim_dir, "--no-lws")
    state = own_sim_dir / "state"
    assert proc.pid is not None
    assert len(processes_under(state)) >= 4
    os.kill(proc.pid, signal.SIGKILL)
    assert wait_gone(state) == []


def test_clean_start_forgets_the_previous_cluster(sim: SimCluster, own_sim_dir: Path) -> None:
    proc, kubeconfig = start_sim(own_sim_dir, "--no-lws")
    try:
        assert kubectl(sim, kubeconfig, "create", "configmap", "old").returncode == 0
    finally:
        proc.stop(timeout=30)
    proc, kubeconfig = start_sim(own_sim_dir, "--no-lws", "--clean")
    try:
        assert "NotFound" in kubectl(sim, kubeconfig, "get", "configmap", "old").stderr
    finally:
        proc.stop(timeout=30)


def test_malformed_topology_is_refused_before_anything_starts(own_sim_dir: Path) -> None:
    import sys

    bad = own_sim_dir / "topo.yaml"
    bad.write_text("nodes:\n  - name: n\n    capacity: {cpu: lots}\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "rbg_flows.cli",
            "sim",
            "serve",
            f"--kubeconfig={own_sim_dir / 'kc'}",
            f"--state-dir={own_sim_dir / 'state'}",
            f"--topology={bad}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "nodes[0].capacity.cpu" in out.stderr and "quantity" in out.stderr
    assert not (own_sim_dir / "state").exists()
