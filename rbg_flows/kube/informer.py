"""List-then-watch forever: the informer loop, without a cache of its own (callers keep what they need)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import structlog

from rbg_flows.kube.client import JSON, ApiError, KubeClient, list_all

log = structlog.get_logger(__name__)

EventHandler = Callable[[str, JSON], Awaitable[None] | None]
RelistHandler = Callable[[list[JSON]], None]
ErrorHandler = Callable[[BaseException], None]

# What a list or watch may fail with and still be worth retrying: the API server or the way to it is
# unwell. Anything else is a bug and is left to propagate.
WATCH_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, ApiError, aiohttp.ClientError, ValueError)


def backoff(attempt: int) -> float:
    """Seconds to wait before retry `attempt` (1, 2, ...): fast at first, at most 5 s apart."""
    return min(5.0, 0.1 * 2.0**attempt)


async def list_and_watch(
    client: KubeClient,
    path: str,
    on_event: EventHandler,
    *,
    on_synced: Callable[[], None] | None = None,
    on_relist: RelistHandler | None = None,
    on_error: ErrorHandler | None = None,
    params: dict[str, str | int] | None = None,
    timeout_seconds: int = 300,
) -> None:
    """Deliver ("ADDED"|"MODIFIED"|"DELETED", object) events for `path` until cancelled.

    Every (re-)list is handed whole to `on_relist` when given: it is the complete state, so the handler
    replaces what it holds (objects deleted while no watch ran are absent from it, and no event ever
    tells of them). Without `on_relist` each list is replayed as ADDED events, for level-triggered
    handlers that can live with that. A dropped watch resumes from the last resourceVersion; 410 Gone
    or an error re-lists after a backoff that grows while failures repeat. `on_error` hears of each
    failure; a list that succeeds is the sign the failures are over.
    """
    params = params or {}
    failures = 0
    while True:
        try:
            items, rv = await list_all(client, path, **params)
            if on_relist is not None:
                on_relist(items)
            else:
                for item in items:
                    await _call(on_event, "ADDED", item)
            if on_synced:
                on_synced()
                on_synced = None
            while True:
                async for event in client.watch(
                    path, resource_version=rv, timeout_seconds=timeout_seconds, **params
                ):
                    # Only a watch that works ends the failure streak: a server whose lists succeed and
                    # whose watches always fail would otherwise be re-listed in a tight loop.
                    failures = 0
                    obj = event["object"]
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] != "BOOKMARK":
                        await _call(on_event, event["type"], obj)
                failures = 0
        except asyncio.CancelledError:
            raise
        except WATCH_ERRORS as e:
            failures += 1
            # 410 is the server's routine way of saying "re-list": at once, and no failure, unless it
            # keeps saying it.
            routine = isinstance(e, ApiError) and e.status == 410 and failures == 1
            if not routine:
                if on_error is not None:
                    on_error(e)
                log.info(
                    "watch interrupted; re-listing", path=path, error=str(e) or repr(e), attempt=failures
                )
            await asyncio.sleep(0 if routine else backoff(failures))


async def _call(handler: EventHandler, kind: str, obj: JSON) -> None:
    result = handler(kind, obj)
    if result is not None:
        await result
