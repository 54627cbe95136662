"""The webhook's serving certificate, from files that are replaced under it (cert-manager renews the
Secret; the kubelet swaps the mounted files), reloaded without a restart.

One `ssl.SSLContext` serves every connection; loading a new pair into it changes what new handshakes
present (OpenSSL copies the context's certificate into each connection when it is created), while
connections already open keep theirs. A new pair is first loaded into a scratch context: a certificate
whose key has not been written yet (the two files never change at the same instant) is refused there,
and the old pair stays until the next look.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

import structlog
from cryptography import x509

from rbg_flows.observability.metrics import WEBHOOK_CERTIFICATE_EXPIRY, WEBHOOK_CERTIFICATE_RELOADS

log = structlog.get_logger(__name__)

# How often the files are compared: the kubelet takes up to a minute to show a renewed Secret anyway.
DEFAULT_RELOAD_SECONDS = 10.0


def _server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


@dataclass
class ReloadingCertificate:
    cert_file: Path
    key_file: Path

    def __post_init__(self) -> None:
        self.context = _server_context()
        self._digest = ""
        if not self.reload():
            raise ssl.SSLError(f"cannot load the serving certificate {self.cert_file} / {self.key_file}")

    def _read(self) -> tuple[bytes, str]:
        cert = self.cert_file.read_bytes()
        digest = hashlib.sha256(cert + b"\0" + self.key_file.read_bytes()).hexdigest()
        return cert, digest

    def reload(self) -> bool:
        """Load the files if they changed since the last load; False when they changed and are not a
        usable pair (the previous one stays). Runs on the event loop's thread, so no handshake sees a
        certificate without its key."""
        try:
            cert, digest = self._read()
            if digest == self._digest:
                return True
            _server_context().load_cert_chain(self.cert_file, self.key_file)
            self.context.load_cert_chain(self.cert_file, self.key_file)
            not_after = x509.load_pem_x509_certificate(cert).not_valid_after_utc
        except (OSError, ssl.SSLError, ValueError) as e:
            WEBHOOK_CERTIFICATE_RELOADS.labels(result="failed").inc()
            log.warning("serving certificate not loaded; keeping the previous one", error=str(e))
            return False
        first = not self._digest
        self._digest = digest
        WEBHOOK_CERTIFICATE_EXPIRY.set(not_after.timestamp())
        if not first:
            WEBHOOK_CERTIFICATE_RELOADS.labels(result="loaded").inc()
        log.info("serving certificate loaded", cert=str(self.cert_file), not_after=not_after.isoformat())
        return True

    async def watch(self, every: float = DEFAULT_RELOAD_SECONDS) -> None:
        """Look at the files every `every` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            self.reload()
