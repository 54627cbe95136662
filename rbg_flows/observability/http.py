"""The small HTTP server of each process: `/metrics` (Prometheus text format) and `/healthz`.

aiohttp in the process's own event loop (the worker already depends on it): a scrape drains the Temporal
SDK's metric buffer on the loop that owns the runtime, with no extra thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rbg_flows.observability import DEFAULT_HEALTH_ADDRESS, DEFAULT_METRICS_ADDRESS
from rbg_flows.observability.metrics import REGISTRY

__all__ = ["DEFAULT_HEALTH_ADDRESS", "DEFAULT_METRICS_ADDRESS", "serving", "split_address"]

log = structlog.get_logger(__name__)


def split_address(address: str) -> tuple[str, int]:
    """`host:port` (`[::1]:9090` for IPv6; `:9090` for every interface) → (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not host:port: {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


async def _metrics(_: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _health(ready: Callable[[], bool]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        if ready():
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready\n")

    return handler


@contextlib.asynccontextmanager
async def serving(
    *,
    metrics: str | None = None,
    health: str | None = None,
    ready: Callable[[], bool] = lambda: True,
    required: Collection[str] = (),
) -> AsyncIterator[None]:
    """Serve `/metrics` on `metrics` and `/healthz` on `health` (None or '' leaves one out; the same
    address serves both) for the duration of the block. A port already taken is an error for an address
    in `required` (one the operator chose), else a warning (a default address on a shared host: two
    processes on a developer's machine cannot both have :9090, and that is no reason to refuse to run)."""
    routes: dict[str, list[web.RouteDef]] = {}
    if metrics:
        routes.setdefault(metrics, []).append(web.get("/metrics", _metrics))
    if health:
        routes.setdefault(health, []).append(web.get("/healthz", _health(ready)))
    runners: list[web.AppRunner] = []
    try:
        for address, defs in routes.items():
            app = web.Application()
            app.add_routes(defs)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            host, port = split_address(address)
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as e:
                if address in required:
                    raise
                log.warning("endpoint not served", address=address, error=str(e))
                continue
            log.info("serving", address=address, paths=[d.path for d in defs])
        yield
    finally:
        for runner in runners:
            await runner.cleanup()
