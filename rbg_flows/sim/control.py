"""The sim's control endpoint (plain HTTP on loopback, `simControl` in sim.json): what a test switches on
and off in the running sim that is not an API object. Today the conversion webhook:

    GET  /webhook         {"running": bool, "url": ...}
    POST /webhook/stop    stop the process (the API server then fails every conversion)
    POST /webhook/start   start it again; answers once it serves
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from rbg_flows.sim.webhook import SimWebhook


def _state(webhook: SimWebhook) -> web.Response:
    return web.json_response({"running": webhook.running(), "url": webhook.url})


def control_app(webhook: SimWebhook) -> web.Application:
    async def get(_: web.Request) -> web.Response:
        return _state(webhook)

    async def stop(_: web.Request) -> web.Response:
        await webhook.stop()
        return _state(webhook)

    async def start(_: web.Request) -> web.Response:
        try:
            await webhook.start()
        except RuntimeError as e:
            return web.json_response({"running": False, "error": str(e)}, status=500)
        return _state(webhook)

    app = web.Application()
    app.router.add_get("/webhook", get)
    app.router.add_post("/webhook/stop", stop)
    app.router.add_post("/webhook/start", start)
    return app


@contextlib.asynccontextmanager
async def control_server(webhook: SimWebhook) -> AsyncIterator[str]:
    """Serve the control endpoint on a free loopback port for the block; yields its URL."""
    runner = web.AppRunner(control_app(webhook), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
