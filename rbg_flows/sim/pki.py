"""The sim's PKI: one CA, serving and client certificates, service-account keys (pure, no I/O but files)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca(common_name: str) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    organizations: tuple[str, ...] = (),
    server: bool = False,
    client: bool = False,
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> KeyPair:
    """Issue a leaf certificate signed by `ca` (CN = user, O = groups, as Kubernetes reads them)."""
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    usages = [
        u
        for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client))
        if on
    ]
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_service_account_key() -> bytes:
    return _key_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


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
