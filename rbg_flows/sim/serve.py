"""`rbg-flows sim serve`: the whole local cluster in one foreground process.

Order: binaries → control plane → node simulator (nodes Ready) → LWS (CRD, controller, webhooks) →
the CRD conversion webhook and the control endpoint that stops and starts it → optional fault proxy →
the kubeconfig file, written last so a caller can wait for it to appear. The CRDs are not installed here
(the caller installs them, pointed at `webhookUrl` with `webhookCaBundle` from sim.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from rbg_flows.kube.client import KubeClient, user_agent
from rbg_flows.sim.build import SimBinaries, ensure_binaries
from rbg_flows.sim.control import control_server
from rbg_flows.sim.controlplane import ControlPlane, ControlPlaneConfig, clean_state
from rbg_flows.sim.kubeconfig import build_kubeconfig, write_atomic
from rbg_flows.sim.lws import LwsController
from rbg_flows.sim.nodesim import NodeSimulator, NodeSimulatorConfig
from rbg_flows.sim.topology import Topology
from rbg_flows.sim.webhook import SimWebhook

log = structlog.get_logger(__name__)


@dataclass
class ServeOptions:
    kubeconfig: Path
    state_dir: Path
    topology: Topology
    port: int = 0
    ready_delay: float = 1.0
    fault_proxy: bool = False
    lws: bool = True
    clean: bool = False
    toleration_seconds: int = 10
    node_monitor_grace_seconds: int | None = None
    audit_log: Path | None = None
    webhook: bool = True


def info_path(state_dir: Path) -> Path:
    return state_dir / "sim.json"


async def wait_nodes_ready(client: KubeClient, names: set[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = (await client.get("/api/v1/nodes", labelSelector="sim.rbg.x-k8s.io/node=true"))["items"]
        ready = {
            n["metadata"]["name"]
            for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        }
        if names <= ready:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("simulated nodes did not become Ready")


async def serve(opts: ServeOptions, binaries: SimBinaries | None = None) -> None:
    started = time.monotonic()
    bins = binaries if binaries is not None else await asyncio.to_thread(ensure_binaries, with_lws=opts.lws)
    if opts.clean:
        clean_state(opts.state_dir)
    node_count = sum(g.count for g in opts.topology.nodes)
    sim_cfg = NodeSimulatorConfig(ready_delay=opts.ready_delay, kubelet_version=bins.kubernetes_version)
    grace = opts.node_monitor_grace_seconds or int(max(20, 4 * sim_cfg.interval(node_count)))
    cp = ControlPlane(
        bins,
        ControlPlaneConfig(
            state_dir=opts.state_dir,
            port=opts.port,
            toleration_seconds=opts.toleration_seconds,
            node_monitor_grace_seconds=grace,
            audit_log=opts.audit_log,
        ),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    opts.kubeconfig.unlink(missing_ok=True)
    proxy: Any = None
    lws: LwsController | None = None
    sim: NodeSimulator | None = None
    client: KubeClient | None = None
    webhook: SimWebhook | None = None
    controls = contextlib.AsyncExitStack()
    try:
        await asyncio.to_thread(cp.start)
        assert cp.pki
        client = await KubeClient.from_kubeconfig(cp.admin_kubeconfig, agent=user_agent("sim"))
        sim = NodeSimulator(client, opts.topology, sim_cfg)
        await sim.start()
        await wait_nodes_ready(client, set(sim.nodes))
        if opts.lws and bins.lws_dir:
            lws = LwsController(bins.lws_dir, opts.state_dir, cp.pki, cp.admin_kubeconfig)
            await lws.install_crd(client)
            cp.procs.append(lws.start(opts.state_dir / "logs"))
            await lws.wait_serving()
            await lws.install_webhooks(client)
        server = cp.server_url
        info: dict[str, object] = {
            "apiserver": cp.server_url,
            "pid": os.getpid(),
            "kubernetesVersion": bins.kubernetes_version,
            "nodes": sorted(sim.nodes),
        }
        if opts.webhook:
            webhook = SimWebhook(opts.state_dir, cp.pki)
            await webhook.start()
            config = webhook.client_config()
            control = await controls.enter_async_context(control_server(webhook))
            info.update(
                webhookUrl=config["url"],
                webhookCaBundle=config["caBundle"],
                webhookMetrics=webhook.metrics_url,
                simControl=control,
            )
        if opts.fault_proxy:
            from rbg_flows.sim.faultproxy import FaultProxy

            proxy = FaultProxy.from_pki(cp.server_url, cp.pki)
            await proxy.start()
            server = proxy.url
            info.update(faultProxy=proxy.url, faultProxyControl=proxy.control_url)
        write_atomic(info_path(opts.state_dir), json.dumps(info, indent=2))
        write_atomic(
            opts.kubeconfig,
            build_kubeconfig(
                server, cp.pki.ca, user="admin", cert=cp.pki.cert("admin"), key=cp.pki.key("admin")
            ),
        )
        log.info(
            "sim ready",
            kubeconfig=str(opts.kubeconfig),
            server=server,
            nodes=len(sim.nodes),
            seconds=round(time.monotonic() - started, 2),
        )
        print(f"sim ready: export KUBECONFIG={opts.kubeconfig}", flush=True)
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            cp.check()
    finally:
        opts.kubeconfig.unlink(missing_ok=True)
        if proxy:
            await proxy.stop()
        await controls.aclose()
        if webhook:
            await webhook.stop()
        if sim:
            await sim.stop()
        if client:
            await client.close()
        await asyncio.to_thread(cp.stop)
        log.info("sim stopped")
