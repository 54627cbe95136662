"""The real LeaderWorkerSet controller, built from `sigs.k8s.io/lws`, run beside the control plane.

Its webhooks are essential (the pod webhook, not the controller, writes the LWS labels and env), so the
API server reaches them by URL on 127.0.0.1 with a serving certificate from the sim's CA, as envtest does.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from pathlib import Path
from typing import Any

import yaml

from rbg_flows.kube.client import KubeClient
from rbg_flows.sim.pki import ClusterPki
from rbg_flows.sim.procs import ManagedProcess, free_port

FIELD_MANAGER = "rbg-flows-sim"
CRD_NAME = "leaderworkersets.leaderworkerset.x-k8s.io"
_POD_SELECTOR = {"matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]}


def webhook_configurations(manifests: str, url_base: str, ca_bundle: bytes) -> list[dict[str, Any]]:
    """LWS's webhook configurations pointed at a URL, with pod webhooks limited to LWS pods (pure)."""
    out = []
    for doc in yaml.safe_load_all(manifests):
        if not doc:
            continue
        doc["metadata"]["name"] = "lws-" + doc["metadata"]["name"]
        for hook in doc["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": url_base + path, "caBundle": base64.b64encode(ca_bundle).decode()}
            if any(r.get("resources") == ["pods"] for r in hook["rules"]):
                hook["objectSelector"] = _POD_SELECTOR
            hook.setdefault("timeoutSeconds", 10)
        out.append(doc)
    return out


class LwsController:
    def __init__(self, lws_dir: Path, state_dir: Path, pki: ClusterPki, kubeconfig: Path):
        self.lws_dir = lws_dir
        self.dir = state_dir / "lws"
        self.pki = pki
        self.kubeconfig = kubeconfig
        self.webhook_port = free_port()
        self.health_port = free_port()
        self.proc: ManagedProcess | None = None

    async def install_crd(self, client: KubeClient) -> None:
        crd = yaml.safe_load((self.lws_dir / "crd.yaml").read_text())
        await client.apply(
            f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}", crd, FIELD_MANAGER
        )
        for _ in range(300):
            obj = await client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{CRD_NAME}")
            if any(
                c["type"] == "Established" and c["status"] == "True"
                for c in (obj.get("status") or {}).get("conditions") or []
            ):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError("the LeaderWorkerSet CRD never became Established")

    def start(self, log_dir: Path) -> ManagedProcess:
        certs = self.dir / "certs"
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "tls.crt").write_bytes(self.pki.cert("webhook").read_bytes())
        (certs / "tls.key").write_bytes(self.pki.key("webhook").read_bytes())
        config = self.dir / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "config.lws.x-k8s.io/v1alpha1",
                    "kind": "Configuration",
                    "leaderElection": {"leaderElect": False},
                    "internalCertManagement": {"enable": False},
                    "webhook": {"host": "127.0.0.1", "port": self.webhook_port, "certDir": str(certs)},
                    "health": {"healthProbeBindAddress": f"127.0.0.1:{self.health_port}"},
                    "metrics": {"bindAddress": "0"},
                    "clientConnection": {"qps": 200, "burst": 400},
                }
            )
        )
        self.proc = ManagedProcess(
            "lws-controller",
            [str(self.lws_dir / "lws-controller"), f"--config={config}", f"--kubeconfig={self.kubeconfig}"],
            log_dir / "lws-controller.log",
        )
        self.proc.start()
        return self.proc

    async def wait_serving(self, timeout: float = 60.0) -> None:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.proc and not self.proc.alive():
                raise RuntimeError(f"lws-controller exited:\n{self.proc.tail()}")
            if await asyncio.to_thread(_tls_ok, self.webhook_port, ctx):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("the LWS webhook server never started serving")

    async def install_webhooks(self, client: KubeClient) -> None:
        docs = webhook_configurations(
            (self.lws_dir / "webhooks.yaml").read_text(),
            f"https://127.0.0.1:{self.webhook_port}",
            self.pki.ca.read_bytes(),
        )
        for doc in docs:
            plural = (
                "mutatingwebhookconfigurations"
                if doc["kind"].startswith("Mutating")
                else "validatingwebhookconfigurations"
            )
            await client.apply(
                f"/apis/admissionregistration.k8s.io/v1/{plural}/{doc['metadata']['name']}",
                doc,
                FIELD_MANAGER,
            )


def _tls_ok(port: int, ctx: ssl.SSLContext) -> bool:
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
            ctx.wrap_socket(sock, server_hostname="127.0.0.1"),
        ):
            return True
    except OSError:
        return False
