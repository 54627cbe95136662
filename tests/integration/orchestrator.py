"""The orchestrator under test: the real `rbg-flows worker` and `rbg-flows watcher` processes."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rbg_flows.sim.controlplane import http_ok
from rbg_flows.sim.procs import ManagedProcess, free_port


@dataclass
class Orchestrator:
    temporal_address: str
    kubeconfig: Path
    task_queue: str
    log_dir: Path
    namespaces: list[str]
    watcher_args: list[str] = field(default_factory=list)
    worker: ManagedProcess | None = None
    watcher: ManagedProcess | None = None
    restarts: int = 0

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "RBG_TEMPORAL_ADDRESS": self.temporal_address,
            "RBG_TASK_QUEUE": self.task_queue,
        }

    def start_worker(self) -> None:
        self.restarts += 1
        self.worker = ManagedProcess(
            "worker",
            [sys.executable, "-m", "rbg_flows.cli", "--log-level=warning", "worker"],
            self.log_dir / f"worker-{self.restarts}.log",
            env=self._env(),
        )
        self.worker.start()

    def start_watcher(self) -> None:
        port = free_port()
        ns_flags = [f"--namespace={n}" for n in self.namespaces]
        self.watcher = ManagedProcess(
            "watcher",
            [
                sys.executable,
                "-m",
                "rbg_flows.cli",
                "--log-level=warning",
                "watcher",
                *ns_flags,
                f"--liveness=http://127.0.0.1:{port}/healthz",
                *self.watcher_args,
            ],
            self.log_dir / "watcher.log",
            env=self._env(),
        )
        self.watcher.start()
        deadline = time.monotonic() + 60
        while not http_ok(f"http://127.0.0.1:{port}/healthz"):
            if not self.watcher.alive():
                raise RuntimeError(f"watcher exited:\n{self.watcher.tail(40)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"watcher not live:\n{self.watcher.tail(40)}")
            time.sleep(0.1)

    def start(self) -> Orchestrator:
        self.start_worker()
        self.start_watcher()
        return self

    def kill_worker(self) -> None:
        assert self.worker and self.worker.proc
        self.worker.proc.send_signal(signal.SIGKILL)
        self.worker.proc.wait()

    def stop(self) -> None:
        for p in (self.watcher, self.worker):
            if p:
                p.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail(60)}" for p in (self.worker, self.watcher) if p)
