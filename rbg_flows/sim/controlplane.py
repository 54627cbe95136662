"""Run etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1.

State (etcd data, PKI, chosen ports, logs) lives in one directory and is kept between runs, so a
restarted cluster comes back with its objects, its identity and its address.
"""

from __future__ import annotations

import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from rbg_flows.sim.build import SimBinaries
from rbg_flows.sim.kubeconfig import build_kubeconfig, write_atomic
from rbg_flows.sim.pki import ClusterPki, ensure_pki
from rbg_flows.sim.procs import ManagedProcess, free_port

log = structlog.get_logger(__name__)

# Beta in v1.35 but off by default: without it a StatefulSet replaces one pod at a time whatever its
# maxUnavailable, so a rollout step of k pods would take k readiness periods. Clusters that leave it
# off still upgrade correctly, only slower (docs/upgrades.md).
# GenericWorkload (alpha, with its API group served) and GangScheduling (the scheduler's plugin): the
# Workload API's native gang scheduling, what `spec.podGroupPolicy.kubeScheduling` uses where it is
# served (docs/placement.md), so a group that cannot fit whole stays wholly Pending.
FEATURE_GATES = "--feature-gates=MaxUnavailableStatefulSet=true,GenericWorkload=true"
SCHEDULER_FEATURE_GATES = "--feature-gates=GenericWorkload=true,GangScheduling=true"
WORKLOAD_API_RUNTIME_CONFIG = "--runtime-config=scheduling.k8s.io/v1alpha1=true"


# Every request once, at Metadata level (who, verb, resource, namespace, code; no bodies), when its response
# starts (watches) or completes: enough to count requests by client and verb without logging payloads.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""


_BIND_ATTEMPTS = 3
_ADDRESS_IN_USE = "address already in use"


class StartError(RuntimeError):
    pass


@dataclass
class ControlPlaneConfig:
    state_dir: Path
    port: int = 0
    # Seconds a pod tolerates its node being NotReady/unreachable before eviction (real default 300).
    toleration_seconds: int = 10
    node_monitor_grace_seconds: int = 20
    api_qps: int = 300
    extra_apiserver_flags: list[str] = field(default_factory=list)
    # Where the API server writes its audit log (JSON lines, AUDIT_POLICY); None: no audit log.
    audit_log: Path | None = None


@dataclass
class Ports:
    apiserver: int
    etcd_client: int
    etcd_peer: int

    @classmethod
    def load_or_pick(cls, path: Path, requested_api_port: int) -> Ports:
        # Reusing the previous ports keeps the cluster address stable across restarts and keeps etcd's
        # stored peer URL valid; a port now taken by someone else is replaced by a free one.
        old: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        api_pref = requested_api_port or old.get("apiserver", 0)
        ports = cls(
            apiserver=free_port(api_pref),
            etcd_client=free_port(old.get("etcd_client", 0)),
            etcd_peer=free_port(old.get("etcd_peer", 0)),
        )
        if requested_api_port and ports.apiserver != requested_api_port:
            raise StartError(f"port {requested_api_port} is not free on 127.0.0.1")
        path.write_text(json.dumps(ports.__dict__))
        return ports


class ControlPlane:
    def __init__(self, binaries: SimBinaries, config: ControlPlaneConfig):
        self.bins = binaries
        self.cfg = config
        self.dir = config.state_dir
        self.pki: ClusterPki | None = None
        self.ports: Ports | None = None
        self.procs: list[ManagedProcess] = []

    # -- paths -----------------------------------------------------------------------------------
    @property
    def admin_kubeconfig(self) -> Path:
        return self.dir / "kubeconfigs" / "admin.yaml"

    @property
    def server_url(self) -> str:
        assert self.ports
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def kubeconfig_for(self, stem: str, user: str) -> Path:
        assert self.pki
        path = self.dir / "kubeconfigs" / f"{stem}.yaml"
        write_atomic(
            path,
            build_kubeconfig(
                self.server_url, self.pki.ca, user=user, cert=self.pki.cert(stem), key=self.pki.key(stem)
            ),
        )
        return path

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 120.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.pki = ensure_pki(self.dir / "pki")
        deadline = time.monotonic() + timeout
        for attempt in range(_BIND_ATTEMPTS):
            # Ports are checked free and then bound by another process, so another listener can come
            # in between; a component that lost its port is started again on a fresh one.
            self.ports = Ports.load_or_pick(self.dir / "ports.json", self.cfg.port)
            try:
                self._start_etcd(deadline)
                self._start_apiserver(deadline)
                self.kubeconfig_for("admin", "admin")
                self._start_controllers()
                self._wait_default_service_account(deadline)
                return
            except StartError as err:
                self.stop()
                if _ADDRESS_IN_USE not in str(err) or attempt + 1 == _BIND_ATTEMPTS:
                    raise
                log.warning("port taken, starting again", attempt=attempt + 1)
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    def check(self) -> None:
        """Raise if a component died (with the end of its log)."""
        for proc in self.procs:
            if not proc.alive():
                raise StartError(f"{proc.name} exited; last lines of {proc.log_path}:\n{proc.tail()}")

    def _spawn(self, name: str, argv: list[str]) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.dir / "logs" / f"{name}.log")
        proc.start()
        self.procs.append(proc)
        log.debug("started", component=name, pid=proc.pid)
        return proc

    def _wait(self, what: str, probe: Any, deadline: float) -> None:
        while time.monotonic() < deadline:
            self.check()
            if probe():
                return
            time.sleep(0.1)
        raise StartError(f"timed out waiting for {what}")

    def _start_etcd(self, deadline: float) -> None:
        assert self.ports
        client = f"http://127.0.0.1:{self.ports.etcd_client}"
        peer = f"http://127.0.0.1:{self.ports.etcd_peer}"
        data = self.dir / "etcd"
        self._spawn(
            "etcd",
            [
                str(self.bins.path("etcd")),
                "--name",
                "sim",
                "--data-dir",
                str(data),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"sim={peer}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes",
                str(4 * 1024**3),
                "--log-level",
                "warn",
            ],
        )
        self._wait("etcd", lambda: http_ok(f"{client}/health"), deadline)

    def _start_apiserver(self, deadline: float) -> None:
        assert self.pki and self.ports
        pki = self.pki
        tol = str(self.cfg.toleration_seconds)
        self._spawn(
            "kube-apiserver",
            [
                str(self.bins.path("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{self.ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports.apiserver}",
                f"--cert-dir={self.dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.cert('apiserver')}",
                f"--tls-private-key-file={pki.key('apiserver')}",
                f"--client-ca-file={pki.ca}",
                f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
                f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-cluster-ip-range=10.0.0.0/16",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultStorageClass,"
                "DefaultTolerationSeconds,Priority,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,"
                "ResourceQuota,NodeRestriction",
                f"--default-not-ready-toleration-seconds={tol}",
                f"--default-unreachable-toleration-seconds={tol}",
                "--allow-privileged=true",
                f"--requestheader-client-ca-file={pki.front_proxy_ca}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                "--max-requests-inflight=1000",
                "--max-mutating-requests-inflight=500",
                "--profiling=false",
                FEATURE_GATES,
                WORKLOAD_API_RUNTIME_CONFIG,
                "--v=1",
                *self._audit_flags(),
                *self.cfg.extra_apiserver_flags,
            ],
        )
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        ctx.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
        self._ssl = ctx
        self._wait("kube-apiserver /readyz", lambda: http_ok(f"{self.server_url}/readyz", ctx), deadline)

    def _audit_flags(self) -> list[str]:
        if self.cfg.audit_log is None:
            return []
        policy = self.dir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self.cfg.audit_log.parent.mkdir(parents=True, exist_ok=True)
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.cfg.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=0",  # one file, never rotated: a reader counts every request of the run
        ]

    def _start_controllers(self) -> None:
        assert self.pki
        pki = self.pki
        qps, burst = str(self.cfg.api_qps), str(self.cfg.api_qps * 2)
        kcm = self.kubeconfig_for("controller-manager", "system:kube-controller-manager")
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bins.path("kube-controller-manager")),
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca}",
                f"--cluster-signing-cert-file={pki.ca}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--use-service-account-credentials=true",
                "--controllers=*",
                FEATURE_GATES,
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--node-monitor-period=2s",
                f"--node-monitor-grace-period={self.cfg.node_monitor_grace_seconds}s",
                f"--kube-api-qps={qps}",
                f"--kube-api-burst={burst}",
                "--concurrent-statefulset-syncs=10",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
                "--concurrent-gc-syncs=40",
                "--v=1",
            ],
        )
        sched_kc = self.kubeconfig_for("scheduler", "system:kube-scheduler")
        sched_cfg = self.dir / "scheduler-config.yaml"
        write_atomic(
            sched_cfg,
            {
                "apiVersion": "kubescheduler.config.k8s.io/v1",
                "kind": "KubeSchedulerConfiguration",
                "clientConnection": {"kubeconfig": str(sched_kc), "qps": float(qps), "burst": int(burst)},
                "leaderElection": {"leaderElect": False},
            },
        )
        self._spawn(
            "kube-scheduler",
            [
                str(self.bins.path("kube-scheduler")),
                f"--config={sched_cfg}",
                f"--authentication-kubeconfig={sched_kc}",
                f"--authorization-kubeconfig={sched_kc}",
                SCHEDULER_FEATURE_GATES,
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                "--v=1",
            ],
        )

    def _wait_default_service_account(self, deadline: float) -> None:
        url = f"{self.server_url}/api/v1/namespaces/default/serviceaccounts/default"
        self._wait("the default service account", lambda: http_ok(url, self._ssl), deadline)


def http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    """True when `url` answers 200 within 2 s (readiness and liveness probes)."""
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def clean_state(state_dir: Path) -> None:
    """Forget the cluster (`--clean`): its data, PKI and ports."""
    for name in ("etcd", "pki", "ports.json", "kubeconfigs", "apiserver-certs", "logs"):
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
