"""Event-driven waits: watch a collection until a predicate over its objects holds, or a deadline passes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rbg_flows.kube.client import JSON, KubeClient
from rbg_flows.kube.informer import list_and_watch


class WaitTimeout(TimeoutError):
    def __init__(self, what: str, last: dict[str, JSON]):
        super().__init__(f"timed out waiting for {what}")
        self.last = last


async def wait_for(
    client: KubeClient,
    path: str,
    predicate: Callable[[dict[str, JSON]], bool],
    *,
    timeout: float,
    what: str = "condition",
    name: str | None = None,
    label_selector: str | None = None,
) -> dict[str, JSON]:
    """Watch `path` (a collection URL) and return the objects by name once `predicate(objects)` holds."""
    params: dict[str, str | int] = {}
    if name:
        params["fieldSelector"] = f"metadata.name={name}"
    if label_selector:
        params["labelSelector"] = label_selector
    objects: dict[str, JSON] = {}
    done = asyncio.Event()
    synced = False

    def on_event(kind: str, obj: JSON) -> None:
        key = obj["metadata"]["name"]
        if kind == "DELETED":
            objects.pop(key, None)
        else:
            objects[key] = obj
        if synced and predicate(objects):
            done.set()

    def on_synced() -> None:
        nonlocal synced
        synced = True
        if predicate(objects):
            done.set()

    task = asyncio.create_task(list_and_watch(client, path, on_event, on_synced=on_synced, params=params))
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        raise WaitTimeout(what, dict(objects)) from None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return objects


def is_ready(pod: JSON) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )
