"""The Kubernetes call wrapper keeps an activity alive while a call waits its turn."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from rbg_flows.activities import common


async def test_a_slow_call_heartbeats_while_it_is_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "CALL_HEARTBEAT_SECONDS", 0.05)
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    async def slow() -> str:
        await asyncio.sleep(0.5)  # e.g. queued behind the client's rate limit
        return "done"

    async def run() -> str:
        return await common.kube_call(slow)

    assert await env.run(run) == "done"
    # One at the attempt, then one per interval while it waited: a 15 s heartbeat timeout would hold.
    assert len(beats) >= 5


async def test_a_cancelled_activity_cancels_its_call() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    env = ActivityEnvironment()

    async def run() -> None:
        await common.kube_call(forever)

    task = asyncio.ensure_future(env.run(run))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
