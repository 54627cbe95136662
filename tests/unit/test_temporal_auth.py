"""How every process connects to Temporal: plaintext for a dev server, mTLS from deploy/'s Secret mount, an
API key (Temporal Cloud) with TLS."""

from __future__ import annotations

from pathlib import Path

from temporalio.service import TLSConfig

from rbg_flows.temporal import temporal_auth


def test_plaintext_when_nothing_is_configured(tmp_path: Path) -> None:
    assert temporal_auth({"RBG_TEMPORAL_TLS_DIR": str(tmp_path)}) == (False, None)


def test_mtls_from_the_mounted_secret(tmp_path: Path) -> None:
    (tmp_path / "tls.crt").write_bytes(b"CERT")
    (tmp_path / "tls.key").write_bytes(b"KEY")
    tls, key = temporal_auth({"RBG_TEMPORAL_TLS_DIR": str(tmp_path)})
    assert isinstance(tls, TLSConfig) and key is None
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert) == (b"CERT", b"KEY", None)
    (tmp_path / "ca.crt").write_bytes(b"CA")
    tls, _ = temporal_auth({"RBG_TEMPORAL_TLS_DIR": str(tmp_path)})
    assert isinstance(tls, TLSConfig) and tls.server_root_ca_cert == b"CA"


def test_an_api_key_implies_tls(tmp_path: Path) -> None:
    env = {"RBG_TEMPORAL_TLS_DIR": str(tmp_path), "RBG_TEMPORAL_API_KEY": "secret"}
    assert temporal_auth(env) == (True, "secret")


def test_tls_with_system_roots_on_request(tmp_path: Path) -> None:
    assert temporal_auth({"RBG_TEMPORAL_TLS_DIR": str(tmp_path), "RBG_TEMPORAL_TLS": "true"}) == (True, None)
