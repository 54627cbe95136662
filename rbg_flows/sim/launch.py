"""Start `rbg-flows sim serve` as a child process and wait until its kubeconfig appears."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from rbg_flows.sim.procs import ManagedProcess
from rbg_flows.sim.serve import info_path
from rbg_flows.sim.webhook import published_client_config


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
    base: Path,
    *extra: str,
    timeout: float = 180.0,
    log_level: str = "info",
    audit_log: Path | None = None,
) -> tuple[ManagedProcess, Path]:
    """Run a sim with its state in `base/state`; returns once `base/kubeconfig` exists (cluster ready).
    With `audit_log` the API server writes its audit log (JSON lines) there."""
    kubeconfig = base / "kubeconfig"
    if audit_log is not None:
        extra = (*extra, f"--audit-log={audit_log}")
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


def launched_webhook(base: Path) -> dict[str, str] | None:
    """The conversion clientConfig (`install_crds(conversion_client_config=...)`) of the sim that
    `launch_sim(base)` started: each sim runs its own webhook."""
    return published_client_config(json.loads(info_path(base / "state").read_text()))
