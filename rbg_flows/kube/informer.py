"""List-then-watch forever: the informer loop, without a cache of its own (callers keep what they need)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import structlog

from rbg_flows.kube.client import JSON, ApiError, KubeClient, list_all

log = structlog.get_logger(__name__)

EventHandler = Callable[[str, JSON], Awaitable[None] | None]


async def list_and_watch(
    client: KubeClient,
    path: str,
    on_event: EventHandler,
    *,
    on_synced: Callable[[], None] | None = None,
    params: dict[str, str | int] | None = None,
    timeout_seconds: int = 300,
) -> None:
    """Deliver ("ADDED"|"MODIFIED"|"DELETED", object) events for `path` until cancelled.

    Every (re-)list replays all objects as ADDED, so handlers must be level-triggered. A dropped watch
    resumes from the last resourceVersion; 410 Gone or an error re-lists after a short backoff.
    """
    params = params or {}
    failures = 0
    while True:
        try:
            items, rv = await list_all(client, path, **params)
            for item in items:
                await _call(on_event, "ADDED", item)
            if on_synced:
                on_synced()
                on_synced = None
            failures = 0
            while True:
                async for event in client.watch(
                    path, resource_version=rv, timeout_seconds=timeout_seconds, **params
                ):
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] != "BOOKMARK":
                        await _call(on_event, event["type"], obj)
        except asyncio.CancelledError:
            raise
        except (TimeoutError, ApiError, aiohttp.ClientError, ValueError) as e:
            failures += 1
            gone = isinstance(e, ApiError) and e.status == 410
            if not gone:
                log.info("watch interrupted; re-listing", path=path, error=str(e), attempt=failures)
            await asyncio.sleep(0 if gone else min(5.0, 0.1 * 2**failures))


async def _call(handler: EventHandler, kind: str, obj: JSON) -> None:
    result = handler(kind, obj)
    if result is not None:
        await result
