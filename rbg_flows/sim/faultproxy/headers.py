"""Which headers cross the proxy, and the identity a client proved with its certificate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from multidict import CIMultiDict, CIMultiDictProxy

# Hop-by-hop headers (RFC 9110 7.6.1) describe one connection, not the message, so they must not
# cross the proxy; Host and Expect are the proxy's own business on each side as well.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_ONLY_DROP = frozenset({"host", "expect"})
# Request-header authentication trusts these headers from the front proxy, so a client must never
# be able to set them itself: that would let anyone claim to be anyone.
_REMOTE_PREFIX = "x-remote-"


# ---------------------------------------------------------------------------------------------
# Headers and identity


class Identity(NamedTuple):
    user: str
    groups: tuple[str, ...]


def identity_from_peercert(cert: Any) -> Identity | None:
    """User (CN) and groups (O) of a verified peer certificate, as the API server's x509 auth reads them."""
    if not isinstance(cert, dict):
        return None
    user = ""
    groups: list[str] = []
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value  # Go keeps the last CN, so do we
            elif key == "organizationName":
                groups.append(value)
    # The API server does not authenticate a certificate without a CN; the request then goes on
    # as if no certificate had been shown, so it must here too.
    return Identity(user, tuple(groups)) if user else None


def _connection_tokens(headers: Mapping[str, str]) -> set[str]:
    # Headers named in Connection are hop-by-hop too (RFC 9110 7.6.1).
    raw = headers.get("Connection", "")
    return {t.strip().lower() for t in raw.split(",") if t.strip()}


def forward_request_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    drop = _HOP_BY_HOP | _REQUEST_ONLY_DROP | _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        low = key.lower()
        if low in drop or low.startswith(_REMOTE_PREFIX):
            continue
        out.add(key, value)
    return out


def forward_response_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    drop = _HOP_BY_HOP | _connection_tokens(headers)
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in drop:
            out.add(key, value)
    return out
