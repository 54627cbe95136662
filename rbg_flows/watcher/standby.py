"""A standby watcher's liveness endpoint: the URL kopf serves while this process leads, answered while it
waits for the Lease, so the liveness probe keeps a healthy standby alive. (kopf binds the same address
once it starts, after this server is closed.)"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web


async def _standby(_: web.Request) -> web.Response:
    return web.Response(text="standby\n")


@contextlib.asynccontextmanager
async def standby_endpoint(url: str | None) -> AsyncIterator[None]:
    """Serve `url`'s path on its host and port for the duration of the block (None: nothing)."""
    if not url:
        yield
        return
    parts = urlsplit(url)
    app = web.Application()
    app.add_routes([web.get(parts.path or "/", _standby)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, parts.hostname or "0.0.0.0", parts.port or 80).start()
        yield
    finally:
        await runner.cleanup()
