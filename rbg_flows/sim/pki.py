"""The sim's PKI: one CA, serving and client certificates, service-account keys (pure, no I/O but files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rbg_flows.pki import KeyPair, issue, key_pem, make_ca

__all__ = ["CLIENTS", "ClusterPki", "KeyPair", "ensure_pki", "issue", "make_ca"]


def make_service_account_key() -> bytes:
    return key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def public_key_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class ClusterPki:
    """Paths of every PEM file the control plane needs, under one directory."""

    root: Path

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def ca(self) -> Path:
        return self.path("ca.crt")

    @property
    def ca_key(self) -> Path:
        return self.path("ca.key")

    @property
    def front_proxy_ca(self) -> Path:
        return self.path("front-proxy-ca.crt")

    @property
    def sa_key(self) -> Path:
        return self.path("sa.key")

    @property
    def sa_pub(self) -> Path:
        return self.path("sa.pub")

    def cert(self, name: str) -> Path:
        return self.path(f"{name}.crt")

    def key(self, name: str) -> Path:
        return self.path(f"{name}.key")


# (file stem, CN, organisations): client identities of the control plane, as kubeadm names them.
CLIENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("admin", "kubernetes-admin", ("system:masters",)),
    ("controller-manager", "system:kube-controller-manager", ()),
    ("scheduler", "system:kube-scheduler", ()),
    ("apiserver-etcd-client", "kube-apiserver-etcd-client", ()),
    ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)),
    ("node-simulator", "rbg-flows:node-simulator", ("system:masters",)),
)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def ensure_pki(root: Path, *, extra_ips: tuple[str, ...] = ()) -> ClusterPki:
    """Create the PKI once; an existing one is kept so a restarted cluster keeps its identity."""
    pki = ClusterPki(root)
    if pki.ca.exists() and pki.sa_pub.exists() and pki.cert("node-simulator").exists():
        return pki
    root.mkdir(parents=True, exist_ok=True)
    ca = make_ca("rbg-flows-sim-ca")
    _write(pki.ca, ca.cert_pem)
    _write(pki.ca_key, ca.key_pem, private=True)
    serving = issue(
        ca,
        "kube-apiserver",
        server=True,
        dns_names=(
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ips=("127.0.0.1", "10.0.0.1", *extra_ips),
    )
    _write(pki.cert("apiserver"), serving.cert_pem)
    _write(pki.key("apiserver"), serving.key_pem, private=True)
    for stem, cn, orgs in CLIENTS:
        pair = issue(ca, cn, organizations=orgs, client=True)
        _write(pki.cert(stem), pair.cert_pem)
        _write(pki.key(stem), pair.key_pem, private=True)
    # The fault proxy authenticates to the API server as a front proxy (request-header auth), so the
    # identity of whoever connects through it is preserved, as the aggregation layer does it.
    fp_ca = make_ca("rbg-flows-front-proxy-ca")
    _write(pki.front_proxy_ca, fp_ca.cert_pem)
    fp_client = issue(fp_ca, "front-proxy-client", client=True)
    _write(pki.cert("front-proxy-client"), fp_client.cert_pem)
    _write(pki.key("front-proxy-client"), fp_client.key_pem, private=True)
    webhook = issue(ca, "rbg-flows-sim-webhooks", server=True, dns_names=("localhost",), ips=("127.0.0.1",))
    _write(pki.cert("webhook"), webhook.cert_pem)
    _write(pki.key("webhook"), webhook.key_pem, private=True)
    sa = make_service_account_key()
    _write(pki.sa_key, sa, private=True)
    _write(pki.sa_pub, public_key_pem(sa))
    return pki
