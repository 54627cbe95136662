"""The sim's PKI: the files, their identities, their issuers, and that a second run keeps them."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rbg_flows.sim.pki import CLIENTS, ClusterPki, ensure_pki

STEMS = ["apiserver", "webhook", "front-proxy-client", *(stem for stem, _, _ in CLIENTS)]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPki:
    return ensure_pki(tmp_path_factory.mktemp("pki") / "nested")


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def test_files_are_created(pki: ClusterPki) -> None:
    for path in [
        pki.ca,
        pki.ca_key,
        pki.front_proxy_ca,
        pki.sa_key,
        pki.sa_pub,
        *(pki.cert(s) for s in STEMS),
        *(pki.key(s) for s in STEMS),
    ]:
        assert path.is_file() and path.read_bytes().startswith(b"-----BEGIN "), path
    for key in [pki.ca_key, pki.sa_key, *(pki.key(s) for s in STEMS)]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_second_call_keeps_the_pki(pki: ClusterPki) -> None:
    before = {p.name: p.read_bytes() for p in pki.root.iterdir()}
    again = ensure_pki(pki.root)
    assert again == pki
    assert again.ca.read_bytes() == before["ca.crt"]
    assert {p.name: p.read_bytes() for p in pki.root.iterdir()} == before


def test_incomplete_pki_is_regenerated(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path)
    ca = first.ca.read_bytes()
    first.cert("node-simulator").unlink()
    second = ensure_pki(tmp_path)
    assert second.cert("node-simulator").exists()
    assert second.ca.read_bytes() != ca
    # Everything was reissued together, so the old leaves do not survive under a new CA.
    _cert(second.cert("admin")).verify_directly_issued_by(_cert(second.ca))


def test_ca(pki: ClusterPki) -> None:
    ca = _cert(pki.ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.subject == ca.issuer
    ca.verify_directly_issued_by(ca)
    assert _names(ca, NameOID.COMMON_NAME) == ["rbg-flows-sim-ca"]


def test_admin_identity(pki: ClusterPki) -> None:
    admin = _cert(pki.cert("admin"))
    assert _names(admin, NameOID.COMMON_NAME) == ["kubernetes-admin"]
    assert _names(admin, NameOID.ORGANIZATION_NAME) == ["system:masters"]
    assert _eku(admin) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not admin.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


@pytest.mark.parametrize(("stem", "cn", "orgs"), CLIENTS)
def test_client_identities(pki: ClusterPki, stem: str, cn: str, orgs: tuple[str, ...]) -> None:
    cert = _cert(pki.cert(stem))
    assert _names(cert, NameOID.COMMON_NAME) == [cn]
    assert _names(cert, NameOID.ORGANIZATION_NAME) == list(orgs)


def test_apiserver_serving_cert(pki: ClusterPki) -> None:
    cert = _cert(pki.cert("apiserver"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = san.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address("127.0.0.1") in ips
    assert ipaddress.ip_address("10.0.0.1") in ips
    assert {"localhost", "kubernetes.default.svc"} <= set(san.get_values_for_type(x509.DNSName))
    assert _eku(cert) == {ExtendedKeyUsageOID.SERVER_AUTH}


def test_webhook_serving_cert(pki: ClusterPki) -> None:
    san = _cert(pki.cert("webhook")).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)


def test_extra_ips(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, extra_ips=("192.0.2.10",))
    san = _cert(pki.cert("apiserver")).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("192.0.2.10") in san.get_values_for_type(x509.IPAddress)


@pytest.mark.parametrize("stem", [s for s in STEMS if s != "front-proxy-client"])
def test_certs_verify_against_the_ca(pki: ClusterPki, stem: str) -> None:
    cert = _cert(pki.cert(stem))
    cert.verify_directly_issued_by(_cert(pki.ca))
    with pytest.raises((ValueError, InvalidSignature)):
        cert.verify_directly_issued_by(_cert(pki.front_proxy_ca))


def test_front_proxy_client_is_issued_by_the_front_proxy_ca(pki: ClusterPki) -> None:
    cert = _cert(pki.cert("front-proxy-client"))
    cert.verify_directly_issued_by(_cert(pki.front_proxy_ca))
    with pytest.raises((ValueError, InvalidSignature)):
        cert.verify_directly_issued_by(_cert(pki.ca))
    assert _names(cert, NameOID.COMMON_NAME) == ["front-proxy-client"]


def _public(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_key().public_bytes(serialization.Encoding.PEM, spki)


@pytest.mark.parametrize("stem", STEMS)
def test_keys_match_certs(pki: ClusterPki, stem: str) -> None:
    cert_pub = (
        _cert(pki.cert(stem))
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert _public(pki.key(stem).read_bytes()) == cert_pub


def test_service_account_keys_match(pki: ClusterPki) -> None:
    assert _public(pki.sa_key.read_bytes()) == pki.sa_pub.read_bytes()
