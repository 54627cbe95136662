"""`rbg-flows webhook` (the conversion webhook process) and `rbg-flows webhook-certs` (its serving
certificate for installs without cert-manager).

Only flags here: the webhook's code is imported when it runs, and it loads no Kubernetes client or
Temporal code (`webhook-certs` does load the Kubernetes client: it writes a Secret and the CRDs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from rbg_flows.observability import DEFAULT_HEALTH_ADDRESS, DEFAULT_METRICS_ADDRESS

DEFAULT_NAMESPACE = "rbg-flows-system"
DEFAULT_SERVICE = "rbg-flows-webhook"
DEFAULT_SECRET = "rbg-flows-webhook-tls"


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    w = sub.add_parser("webhook", help="run the CRD conversion webhook (HTTPS, POST /convert)")
    w.add_argument("--host", default="0.0.0.0", help="address to listen on (default: every interface)")
    w.add_argument("--port", type=int, default=9443)
    w.add_argument("--cert-file", type=Path, required=True, help="PEM serving certificate (chain)")
    w.add_argument("--key-file", type=Path, required=True, help="PEM private key of --cert-file")
    w.add_argument(
        "--reload-seconds",
        type=float,
        default=10.0,
        help="how often the certificate files are checked for a change (cert-manager renews them)",
    )
    w.add_argument(
        "--max-request-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="a larger ConversionReview is refused with 413 (bounds the memory one request can use)",
    )
    w.add_argument(
        "--health-address",
        default=os.environ.get("RBG_HEALTH_ADDRESS"),
        help=f"host:port serving /healthz ('' to disable; default {DEFAULT_HEALTH_ADDRESS})",
    )
    w.add_argument(
        "--metrics-address",
        default=os.environ.get("RBG_METRICS_ADDRESS"),
        help=f"host:port serving /metrics ('' to disable; default {DEFAULT_METRICS_ADDRESS})",
    )
    w.add_argument(
        "--log-format",
        choices=("json", "console"),
        default=os.environ.get("RBG_LOG_FORMAT") or None,
        help="default: json, or console on a terminal",
    )
    w.set_defaults(func=run_webhook)

    c = sub.add_parser(
        "webhook-certs",
        help="create the webhook's serving certificate Secret and put its CA in the CRDs (no cert-manager)",
    )
    c.add_argument("-n", "--namespace", default=os.environ.get("POD_NAMESPACE") or DEFAULT_NAMESPACE)
    c.add_argument("--service", default=DEFAULT_SERVICE, help="the webhook's Service (the names it serves)")
    c.add_argument("--secret", default=DEFAULT_SECRET, help="the kubernetes.io/tls Secret the webhook mounts")
    c.add_argument(
        "--renew-within-days",
        type=float,
        default=90.0,
        help="a certificate expiring sooner is replaced (the old CA stays in caBundle meanwhile)",
    )
    c.add_argument("--validity-days", type=float, default=1826.0, help="of a new certificate")
    c.add_argument("--renew", action="store_true", help="replace the certificate even if it is still good")
    c.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: in-cluster or ~/.kube/config"
    )
    c.set_defaults(func=run_webhook_certs)


def _configure_logs(args: argparse.Namespace) -> None:
    from rbg_flows.cli import logs

    json = None if args.log_format is None else args.log_format == "json"
    logs.configure(getattr(args, "log_level", "info"), json=json)


def run_webhook(args: argparse.Namespace) -> int:
    from rbg_flows.webhook.run import WebhookOptions, run

    _configure_logs(args)
    health = DEFAULT_HEALTH_ADDRESS if args.health_address is None else args.health_address
    metrics = DEFAULT_METRICS_ADDRESS if args.metrics_address is None else args.metrics_address
    return run(
        WebhookOptions(
            cert_file=args.cert_file,
            key_file=args.key_file,
            address=f"{args.host}:{args.port}",
            health=health or None,
            metrics=metrics or None,
            required=[a for a in (args.health_address, args.metrics_address) if a],
            max_request_bytes=args.max_request_bytes,
            reload_seconds=args.reload_seconds,
        )
    )


def run_webhook_certs(args: argparse.Namespace) -> int:
    from rbg_flows.cli.webhook_certs import CertOptions, ensure_certificates
    from rbg_flows.kube.client import ApiError

    opts = CertOptions(
        namespace=args.namespace,
        service=args.service,
        secret=args.secret,
        renew_within_days=args.renew_within_days,
        validity_days=args.validity_days,
        force=args.renew,
    )

    async def main() -> str:
        # The worker's way to a client (in-cluster, else the kubeconfig); processes is imported here only.
        from rbg_flows.cli.processes import _kube

        async with await _kube(args, component="webhook-certs") as kube:
            return await ensure_certificates(kube, opts)

    try:
        print(asyncio.run(main()))
    except ApiError as e:
        print(f"webhook-certs: {e}")
        return 1
    return 0
