"""The watcher's leader election loop: stand by until the Lease is ours, lead while it is renewed, give it
back on a clean stop. The decisions are `lease.py`'s; this module only reads and writes the Lease.

The Lease is read and written through the official client, as the rest of the watcher's own requests
(`cluster.py`), one blocking call at a time in a thread: a few small requests every retry period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from rbg_flows.observability.metrics import WATCHER_LEADER
from rbg_flows.watcher.lease import (
    JITTER,
    LeaseRecord,
    LeaseTimings,
    Observed,
    claim,
    observe,
    released,
)

log = structlog.get_logger(__name__)

# What a standby serves while it waits (its health endpoint), entered once it first finds the Lease held.
Standby = Callable[[], contextlib.AbstractAsyncContextManager[None]]


class LeadershipLost(Exception):
    """The Lease could not be renewed before the renew deadline, or another holder took it."""


@dataclass(frozen=True)
class StoredLease:
    resource_version: str
    record: LeaseRecord


class LeaseStore(Protocol):
    async def get(self) -> StoredLease | None: ...  # None: no such Lease
    async def create(self, record: LeaseRecord) -> StoredLease: ...
    async def replace(self, resource_version: str, record: LeaseRecord) -> StoredLease: ...


class KubeLeaseStore:
    """One Lease through `kubernetes.client.CoordinationV1Api`; a write carries the resourceVersion it
    read, so of two candidates writing at once one gets a 409 and loses the round."""

    def __init__(self, cfg: Any, namespace: str, name: str, request_timeout: float) -> None:
        from kubernetes import client

        self.namespace, self.name, self.timeout = namespace, name, request_timeout
        self._api: Any = client.CoordinationV1Api(client.ApiClient(cfg))

    @staticmethod
    def _stored(raw: Any) -> StoredLease:
        body = json.loads(raw.data)
        return StoredLease(body["metadata"]["resourceVersion"], LeaseRecord.from_spec(body.get("spec")))

    def _body(self, record: LeaseRecord, resource_version: str | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        spec = {k: v for k, v in record.to_spec().items() if v is not None}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def _get(self) -> StoredLease | None:
        from kubernetes.client import ApiException

        try:
            raw = self._api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False, _request_timeout=self.timeout
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return self._stored(raw)

    def _create(self, record: LeaseRecord) -> StoredLease:
        raw = self._api.create_namespaced_lease(
            self.namespace, self._body(record), _preload_content=False, _request_timeout=self.timeout
        )
        return self._stored(raw)

    def _replace(self, resource_version: str, record: LeaseRecord) -> StoredLease:
        raw = self._api.replace_namespaced_lease(
            self.name,
            self.namespace,
            self._body(record, resource_version),
            _preload_content=False,
            _request_timeout=self.timeout,
        )
        return self._stored(raw)

    async def get(self) -> StoredLease | None:
        return await asyncio.to_thread(self._get)

    async def create(self, record: LeaseRecord) -> StoredLease:
        return await asyncio.to_thread(self._create, record)

    async def replace(self, resource_version: str, record: LeaseRecord) -> StoredLease:
        return await asyncio.to_thread(self._replace, resource_version, record)

    def close(self) -> None:
        self._api.api_client.close()


def _now() -> datetime:
    return datetime.now(UTC)


class Elector:
    def __init__(
        self,
        store: LeaseStore,
        me: str,
        timings: LeaseTimings,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _now,
    ) -> None:
        self.store, self.me, self.timings, self.clock, self.wall = store, me, timings, clock, wall
        self.observed: Observed | None = None
        self.stored: StoredLease | None = None
        self.leading = False

    @property
    def holder(self) -> str:
        return self.observed.record.holder if self.observed else ""

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease, and write it if it is free, expired or ours. False on any failure
        (the caller's deadlines decide what a failure means)."""
        try:
            self.stored = await self.store.get()
            if self.stored is not None:
                self.observed = observe(self.observed, self.stored.record, self.clock())
            want = claim(
                self.observed if self.stored else None, self.me, self.clock(), self.wall(), self.timings
            )
            if want is None:
                return False
            if self.stored is None:
                self.stored = await self.store.create(want)
            else:
                self.stored = await self.store.replace(self.stored.resource_version, want)
        except Exception as e:  # 409, 403, network: the round is lost either way
            if getattr(e, "status", None) == 409:  # another candidate wrote first: the normal race
                log.debug("lease round lost to another candidate")
            else:
                log.warning("could not read or write the lease", error=_short(e))
            return False
        self.observed = Observed(self.stored.record, self.clock())
        return True

    async def acquire(self, stop: asyncio.Event, standby: Standby) -> bool:
        """Try until the Lease is ours (True) or `stop` is set (False); while not ours, `standby()`'s
        context is entered (its health endpoint)."""
        async with contextlib.AsyncExitStack() as standing_by:
            first = True
            while not stop.is_set():
                if await self.try_acquire_or_renew():
                    return True
                if first:
                    await standing_by.enter_async_context(standby())
                    log.info("standing by", holder=self.holder or None, identity=self.me)
                    first = False
                await _wait(stop, self.timings.retry_period * random.uniform(1.0, JITTER))
        return False

    async def renew_until_lost(self) -> None:
        """Renew every retry period; return (the lease lost) when no round succeeded within the renew
        deadline of the last success, or at once when another holder is seen."""
        last = self.clock()
        while True:
            await asyncio.sleep(self.timings.retry_period)
            left = last + self.timings.renew_deadline - self.clock()
            try:
                ok = await asyncio.wait_for(self.try_acquire_or_renew(), timeout=max(left, 0.001))
            except TimeoutError:
                ok = False
            if ok:
                last = self.clock()
            elif self.holder and self.holder != self.me:
                log.error("the lease was taken by another watcher", holder=self.holder)
                return
            elif self.clock() - last >= self.timings.renew_deadline:
                log.error(
                    "the lease was not renewed within its deadline", deadline=self.timings.renew_deadline
                )
                return

    async def release(self) -> None:
        """Give the Lease back, if still ours, so a standby takes over at its next round."""
        if self.stored is None or self.stored.record.holder != self.me:
            return
        try:
            await self.store.replace(self.stored.resource_version, released(self.stored.record, self.wall()))
            log.info("lease released")
        except Exception as e:  # it then expires on its own
            log.warning("could not release the lease", error=str(e) or repr(e))

    async def lead(
        self,
        operate: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
        stop: asyncio.Event,
        standby: Standby,
    ) -> None:
        """Run `operate(its stop flag)` while this process holds the Lease. Returns after a clean stop
        (the Lease released); raises LeadershipLost when the Lease is lost, after the operator stopped."""
        if not await self.acquire(stop, standby):
            return
        log.info("leading", identity=self.me)
        self.leading = True
        WATCHER_LEADER.set(1)
        operator_stop = asyncio.Event()
        operator = asyncio.create_task(operate(operator_stop), name="operator")
        renewing = asyncio.create_task(self.renew_until_lost(), name="lease-renew")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait({operator, renewing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            operator_stop.set()
            WATCHER_LEADER.set(0)
            self.leading = False
            # The operator must be gone before a standby may take over: the time between the renew
            # deadline and the lease's expiry.
            grace = self.timings.duration - self.timings.renew_deadline
            await asyncio.wait({operator}, timeout=grace)
            if not operator.done():
                operator.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await operator
            stopping.cancel()
            lost = renewing.done() and not renewing.cancelled()
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
        if lost:
            raise LeadershipLost(f"{self.me} lost the lease")
        await self.release()
        if not stop.is_set():
            operator.result()  # the operator ended by itself: its error is the process's


def _short(e: Exception) -> str:
    status, reason = getattr(e, "status", None), getattr(e, "reason", None)
    return f"{status} {reason}" if status else str(e) or repr(e)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
