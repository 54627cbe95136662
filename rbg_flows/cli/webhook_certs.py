"""`rbg-flows webhook-certs`: the conversion webhook's serving certificate without cert-manager.

A one-shot (deploy/ runs it as a Job): a CA of its own signs a certificate for the webhook Service's
names; the `kubernetes.io/tls` Secret the webhook mounts gets the pair and the CA (`ca.crt`), and every
CRD converted by the webhook gets the CA as its `caBundle`. Safe to re-run: a certificate that is still
good is kept (only the caBundle is checked); one that expires within `--renew-within-days`, or any with
`--renew`, is replaced by a new CA and certificate, and the caBundle then carries the new CA and the
previous one, so the API server still trusts pods that serve the old certificate until the kubelet
refreshes their files (about a minute). The CA's key is never stored: nothing else can be signed with it.
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from rbg_flows.api.crd import KINDS
from rbg_flows.kube.client import FIELD_MANAGER, KubeClient
from rbg_flows.kube.crds import CRD_API
from rbg_flows.pki import issue, make_ca


@dataclass(frozen=True)
class CertOptions:
    namespace: str
    service: str
    secret: str
    renew_within_days: float = 90.0
    validity_days: float = 1826.0
    force: bool = False


def dns_names(service: str, namespace: str) -> tuple[str, ...]:
    """The names a Service is reached by; the API server dials `<service>.<namespace>.svc`."""
    return (
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        f"{service}.{namespace}",
        service,
    )


def _decoded(secret: dict[str, Any] | None, key: str) -> bytes:
    value = ((secret or {}).get("data") or {}).get(key)
    return base64.b64decode(value) if value else b""


def still_good(
    secret: dict[str, Any] | None, names: tuple[str, ...], now: datetime.datetime, within: float
) -> bool:
    """Whether the Secret's certificate serves every name and outlives `within` days from `now`."""
    cert_pem, key_pem, ca_pem = (_decoded(secret, k) for k in ("tls.crt", "tls.key", "ca.crt"))
    if not (cert_pem and key_pem and ca_pem):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    served = set(sans.get_values_for_type(x509.DNSName))
    return set(names) <= served and cert.not_valid_after_utc - now > datetime.timedelta(days=within)


def new_secret(opts: CertOptions, previous: dict[str, Any] | None) -> dict[str, Any]:
    """A new CA and serving certificate as the Secret's body; `ca.crt` also keeps the previous CA."""
    validity = datetime.timedelta(days=opts.validity_days)
    ca = make_ca(f"{opts.service}-ca", validity=validity)
    names = dns_names(opts.service, opts.namespace)
    pair = issue(ca, names[0], server=True, dns_names=names, validity=validity)
    bundle = ca.cert_pem
    old = _decoded(previous, "ca.crt")
    if old:
        # Only the newest previous CA: two renewals ago no pod serves its certificate any more.
        bundle += x509.load_pem_x509_certificates(old)[0].public_bytes(Encoding.PEM)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": opts.secret,
            "namespace": opts.namespace,
            "labels": {"app.kubernetes.io/name": "rbg-flows", "app.kubernetes.io/component": "webhook"},
        },
        "data": {
            k: base64.b64encode(v).decode()
            for k, v in (("tls.crt", pair.cert_pem), ("tls.key", pair.key_pem), ("ca.crt", bundle))
        },
    }


def webhook_crds() -> list[str]:
    """The CRDs whose versions the webhook converts (by their models: whether the installed CRD does
    yet is read from the cluster)."""
    return [kind.crd_name for kind in KINDS if kind.webhook_conversion]


async def ensure_certificates(
    kube: KubeClient, opts: CertOptions, now: datetime.datetime | None = None
) -> str:
    """Make the Secret and the CRDs' caBundle right; a one-line summary of what was done and skipped."""
    path = f"/api/v1/namespaces/{opts.namespace}/secrets/{opts.secret}"
    existing = await kube.get_or_none(path)
    names = dns_names(opts.service, opts.namespace)
    moment = now or datetime.datetime.now(datetime.UTC)
    done: list[str] = []
    skipped: list[str] = []
    secret = existing
    if opts.force or not still_good(existing, names, moment, opts.renew_within_days):
        secret = await kube.apply(path, new_secret(opts, existing), FIELD_MANAGER)
        done.append(f"{'renewed' if existing else 'created'} Secret {opts.namespace}/{opts.secret}")
    bundle = base64.b64encode(_decoded(secret, "ca.crt")).decode()
    for name in webhook_crds():
        crd = await kube.get_or_none(f"{CRD_API}/{name}")
        conversion = (crd or {}).get("spec", {}).get("conversion") or {}
        if conversion.get("strategy") != "Webhook":
            skipped.append(f"CRD {name}: {'no conversion webhook' if crd else 'not installed'}")
            continue
        webhook = (conversion.get("webhook") or {}).get("clientConfig") or {}
        service = webhook.get("service") or {}
        if (service.get("namespace"), service.get("name")) != (opts.namespace, opts.service):
            skipped.append(f"CRD {name}: it calls {service or webhook.get('url')}, not {names[0]}")
            continue
        if webhook.get("caBundle") != bundle:
            patch = {"spec": {"conversion": {"webhook": {"clientConfig": {"caBundle": bundle}}}}}
            await kube.patch(f"{CRD_API}/{name}", patch)
            done.append(f"caBundle of CRD {name}")
    summary = "; ".join(done) or "certificate and caBundle already in place"
    return summary + (f" (skipped {'; '.join(skipped)})" if skipped else "")
