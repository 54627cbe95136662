"""The conversion webhook (`rbg-flows webhook`) run by the sim as a local process the API server reaches at
`https://127.0.0.1:<port>/convert`, serving the sim CA's webhook certificate (IP SAN 127.0.0.1).

Tests stop and start it through the sim's control endpoint (`rbg_flows.sim.control`) to see what the API
server does without it. Its port is kept in the state directory, so a restarted sim serves the address
the CRDs stored in etcd already name.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

from rbg_flows.sim.controlplane import http_ok
from rbg_flows.sim.pki import ClusterPki
from rbg_flows.sim.procs import ManagedProcess, free_port

CONVERT_PATH = "/convert"  # rbg_flows.webhook.server.CONVERT_PATH (a sibling room: not imported)


def published_client_config(info: dict[str, Any]) -> dict[str, str] | None:
    """The CRDs' conversion clientConfig a running sim published in its sim.json (None: it runs no
    webhook)."""
    if "webhookUrl" not in info:
        return None
    return {"url": info["webhookUrl"], "caBundle": info["webhookCaBundle"]}


class SimWebhook:
    def __init__(self, state_dir: Path, pki: ClusterPki, log_level: str = "info"):
        self.pki = pki
        self.log_path = state_dir / "logs" / "webhook.log"
        ports_file = state_dir / "webhook-ports.json"
        old: dict[str, int] = json.loads(ports_file.read_text()) if ports_file.exists() else {}
        self.port = free_port(old.get("port", 0))
        self.health_port = free_port(old.get("health", 0))
        ports_file.write_text(json.dumps({"port": self.port, "health": self.health_port}))
        self.log_level = log_level
        self.proc: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{CONVERT_PATH}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}/metrics"

    def client_config(self) -> dict[str, Any]:
        """The CRDs' `spec.conversion.webhook.clientConfig` that points at this process."""
        return {"url": self.url, "caBundle": base64.b64encode(self.pki.ca.read_bytes()).decode()}

    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()

    async def start(self, timeout: float = 30.0) -> None:
        """Start it (no-op when running) and return once it serves."""
        if self.running():
            return
        self.proc = ManagedProcess(
            "webhook",
            [
                sys.executable,
                "-m",
                "rbg_flows.cli",
                "--log-level",
                self.log_level,
                "webhook",
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--cert-file={self.pki.cert('webhook')}",
                f"--key-file={self.pki.key('webhook')}",
                # One loopback port serves both /healthz and /metrics.
                f"--health-address=127.0.0.1:{self.health_port}",
                f"--metrics-address=127.0.0.1:{self.health_port}",
                "--log-format=json",
            ],
            self.log_path,
        )
        self.proc.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await asyncio.to_thread(http_ok, self.health_url):
            if not self.proc.alive():
                raise RuntimeError(f"the conversion webhook exited:\n{self.proc.tail()}")
            if loop.time() > deadline:
                raise RuntimeError(
                    f"the conversion webhook did not serve within {timeout}s:\n{self.proc.tail()}"
                )
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        if self.proc is not None:
            await asyncio.to_thread(self.proc.stop)
