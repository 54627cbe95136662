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
    worker_args: list[str] = field(default_factory=list)
    worker: ManagedProcess | None = None
    watcher: ManagedProcess | None = None
    restarts: int = 0
    # The watcher's own identity, when it is not the worker's (the RBAC test gives each its account).
    watcher_kubeconfig: Path | None = None
    # Off unless a test asks: the session's watchers share one cluster, so one Lease name per cluster id,
    # and only one of them could lead (tests that want the Lease give each its own --lease-name).
    leader_election: bool = False

    def _env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.kubeconfig),
            "RBG_TEMPORAL_ADDRESS": self.temporal_address,
            "RBG_TASK_QUEUE": self.task_queue,
        }

    def start_worker(self) -> None:
        self.restarts += 1
        self.worker = self.spawn_worker(log_name=f"worker-{self.restarts}.log")

    def spawn_worker(self, *extra: str, log_name: str) -> ManagedProcess:
        """One more worker process on the same task queue (started, not waited for)."""
        worker = ManagedProcess(
            "worker",
            [
                sys.executable,
                "-m",
                "rbg_flows.cli",
                "--log-level=warning",
                "worker",
                *self.worker_args,
                *extra,
            ],
            self.log_dir / log_name,
            env=self._env(),
        )
        worker.start()
        return worker

    def start_watcher(self) -> None:
        self.watcher = self.spawn_watcher()

    def spawn_watcher(self, *extra: str, log_name: str = "watcher.log") -> ManagedProcess:
        """One more watcher process (its own log and liveness port), once its liveness endpoint answers:
        kopf's when it leads, the standby's when it waits for the Lease."""
        port = free_port()
        ns_flags = [f"--namespace={n}" for n in self.namespaces]
        election = [] if self.leader_election else ["--no-leader-election"]
        watcher = ManagedProcess(
            "watcher",
            [
                sys.executable,
                "-m",
                "rbg_flows.cli",
                "--log-level=warning",
                "watcher",
                *ns_flags,
                f"--liveness=http://127.0.0.1:{port}/healthz",
                *election,
                *self.watcher_args,
                *extra,
            ],
            self.log_dir / log_name,
            env=self._env(self.watcher_kubeconfig),
        )
        watcher.start()
        deadline = time.monotonic() + 60
        while not http_ok(f"http://127.0.0.1:{port}/healthz"):
            if not watcher.alive():
                raise RuntimeError(f"watcher exited:\n{watcher.tail(40)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"watcher not live:\n{watcher.tail(40)}")
            time.sleep(0.1)
        return watcher

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
