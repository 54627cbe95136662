"""Start `rbg-flows sim serve` as a child process and wait until its kubeconfig appears."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rbg_flows.sim.procs import ManagedProcess


def wait_for_file(path: Path, proc: ManagedProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited before it was ready:\n{proc.tail(40)}")
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"{proc.name} not ready after {timeout}s:\n{proc.tail(40)}")
        time.sleep(0.02)


def launch_sim(
    base: Path, *extra: str, timeout: float = 180.0, log_level: str = "info"
) -> tuple[ManagedProcess, Path]:
    """Run a sim with its state in `base/state`; returns once `base/kubeconfig` exists (cluster ready)."""
    kubeconfig = base / "kubeconfig"
    argv = [
        sys.executable,
        "-m",
        "rbg_flows.cli",
        "--log-level",
        log_level,
        "sim",
        "serve",
        f"--kubeconfig={kubeconfig}",
        f"--state-dir={base / 'state'}",
        *extra,
    ]
    proc = ManagedProcess("sim", argv, base / "sim.log")
    proc.start()
    wait_for_file(kubeconfig, proc, timeout)
    return proc, kubeconfig
