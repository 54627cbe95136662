"""The conversion webhook process: `POST /convert` over HTTPS, `/healthz` and `/metrics` beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from rbg_flows.api.conversion import ConversionError, convert
from rbg_flows.observability.http import serving, split_address
from rbg_flows.shutdown import stop_event
from rbg_flows.webhook.server import CONVERT_PATH, DEFAULT_MAX_REQUEST_BYTES, conversion_app
from rbg_flows.webhook.tls import DEFAULT_RELOAD_SECONDS, ReloadingCertificate

log = structlog.get_logger(__name__)

DEFAULT_PORT = 9443


@dataclass(frozen=True)
class WebhookOptions:
    cert_file: Path
    key_file: Path
    address: str = f"0.0.0.0:{DEFAULT_PORT}"
    health: str | None = None
    metrics: str | None = None
    # Addresses the operator chose: one that cannot be bound fails the start (observability.http).
    required: Collection[str] = field(default_factory=tuple)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    reload_seconds: float = DEFAULT_RELOAD_SECONDS


async def serve(opts: WebhookOptions) -> None:
    """Serve until SIGTERM or SIGINT. /healthz answers 200 once the HTTPS listener is up."""
    stop = stop_event()
    certificate = ReloadingCertificate(opts.cert_file, opts.key_file)
    app = conversion_app(convert, (ConversionError,), max_request_bytes=opts.max_request_bytes)
    # The API server keeps its connections to a webhook open; on SIGTERM the reviews in flight get a few
    # seconds to finish.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    listening = False
    reloader = asyncio.create_task(certificate.watch(opts.reload_seconds), name="certificate-reload")
    try:
        async with serving(
            metrics=opts.metrics, health=opts.health, ready=lambda: listening, required=opts.required
        ):
            host, port = split_address(opts.address)
            site = web.TCPSite(runner, host, port, ssl_context=certificate.context)
            await site.start()
            listening = True
            log.info("conversion webhook serving", address=opts.address, path=CONVERT_PATH)
            await stop.wait()
            listening = False
    finally:
        reloader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloader
        await runner.cleanup()
    log.info("conversion webhook stopped")


def run(opts: WebhookOptions) -> int:
    asyncio.run(serve(opts))
    return 0
