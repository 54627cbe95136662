"""The election loop (rbg_flows/watcher/elector.py) over an in-memory Lease with the API server's one rule
that matters here (a write carrying a stale resourceVersion is refused), with sub-second timings: one
candidate leads, a standby takes over once the holder stops renewing, a holder that cannot renew stops its
operator and raises, a clean stop hands the Lease over at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from rbg_flows.watcher.elector import Elector, LeadershipLost, StoredLease
from rbg_flows.watcher.lease import LeaseRecord, LeaseTimings

TIMINGS = LeaseTimings(duration=0.6, renew_deadline=0.4, retry_period=0.05)


class Conflict(Exception):
    pass


class Lease:
    """The Lease object: a resourceVersion and a record."""

    def __init__(self) -> None:
        self.stored: StoredLease | None = None
        self.version = 0

    def write(self, expected: str | None, record: LeaseRecord) -> StoredLease:
        current = self.stored.resource_version if self.stored else None
        if expected != current:
            raise Conflict(f"resourceVersion {expected} is not {current}")
        self.version += 1
        self.stored = StoredLease(str(self.version), record)
        return self.stored


class Store:
    """One candidate's view of the Lease; `broken` makes every request of this candidate fail."""

    def __init__(self, lease: Lease) -> None:
        self.lease, self.broken = lease, False

    def _check(self) -> None:
        if self.broken:
            raise ConnectionError("the API server is unreachable")

    async def get(self) -> StoredLease | None:
        self._check()
        return self.lease.stored

    async def create(self, record: LeaseRecord) -> StoredLease:
        self._check()
        return self.lease.write(None, record)

    async def replace(self, resource_version: str, record: LeaseRecord) -> StoredLease:
        self._check()
        return self.lease.write(resource_version, record)


@contextlib.asynccontextmanager
async def standby() -> AsyncIterator[None]:
    yield


class Candidate:
    def __init__(self, lease: Lease, name: str) -> None:
        self.store = Store(lease)
        self.elector = Elector(self.store, name, TIMINGS)
        self.stop = asyncio.Event()
        self.operating = asyncio.Event()
        self.operator_stopped = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def operate(self, stop_flag: asyncio.Event) -> None:
        self.operating.set()
        await stop_flag.wait()
        self.operator_stopped.set()

    def start(self) -> Candidate:
        self.task = asyncio.create_task(self.elector.lead(self.operate, self.stop, standby))
        return self

    async def kill(self) -> None:
        """Gone without a word (kill -9): nothing released."""
        assert self.task
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def first_to_operate(*candidates: Candidate, timeout: float = 5.0) -> Candidate:
    waits = {asyncio.create_task(c.operating.wait()): c for c in candidates}
    done, pending = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for t in pending:
        t.cancel()
    assert done, "no candidate leads"
    return waits[done.pop()]


async def test_one_candidate_leads_and_a_standby_takes_over_when_it_stops_renewing() -> None:
    lease = Lease()
    a, b = Candidate(lease, "a").start(), Candidate(lease, "b").start()
    leader = await first_to_operate(a, b)
    standby_one = b if leader is a else a
    await asyncio.sleep(TIMINGS.duration * 2)  # renewals keep the standby out
    assert not standby_one.operating.is_set()
    assert lease.stored and lease.stored.record.holder == leader.elector.me

    await leader.kill()
    killed = time.monotonic()
    await asyncio.wait_for(standby_one.operating.wait(), timeout=5)
    took = time.monotonic() - killed
    # Not before the record stopped changing for its duration (whole seconds on the Lease).
    assert took >= TIMINGS.duration_seconds - 2 * TIMINGS.retry_period
    assert lease.stored and lease.stored.record.holder == standby_one.elector.me
    assert lease.stored.record.transitions == 1
    standby_one.stop.set()
    await asyncio.wait_for(standby_one.task, timeout=5)  # type: ignore[arg-type]


async def test_a_holder_that_cannot_renew_stops_its_operator_and_raises() -> None:
    lease = Lease()
    a = Candidate(lease, "a").start()
    await asyncio.wait_for(a.operating.wait(), timeout=5)
    a.store.broken = True
    lost_at = time.monotonic()
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(a.task, timeout=5)  # type: ignore[arg-type]
    # Given up at its renew deadline, so its operator is gone before the lease expires for the others.
    assert time.monotonic() - lost_at < TIMINGS.duration
    assert a.operator_stopped.is_set()


async def test_a_holder_that_sees_another_holder_stops_at_once() -> None:
    lease = Lease()
    a = Candidate(lease, "a").start()
    await asyncio.wait_for(a.operating.wait(), timeout=5)
    assert lease.stored
    lease.write(lease.stored.resource_version, LeaseRecord("intruder", 15))
    with pytest.raises(LeadershipLost):
        await asyncio.wait_for(a.task, timeout=TIMINGS.renew_deadline)  # type: ignore[arg-type]
    assert a.operator_stopped.is_set()


async def test_a_clean_stop_releases_the_lease_and_a_standby_takes_it_at_once() -> None:
    lease = Lease()
    a = Candidate(lease, "a").start()
    await asyncio.wait_for(a.operating.wait(), timeout=5)
    b = Candidate(lease, "b").start()
    await asyncio.sleep(TIMINGS.retry_period * 3)
    assert not b.operating.is_set()

    a.stop.set()
    await asyncio.wait_for(a.task, timeout=5)  # type: ignore[arg-type]
    assert a.operator_stopped.is_set()
    assert lease.stored and lease.stored.record.holder == ""
    stopped = time.monotonic()
    await asyncio.wait_for(b.operating.wait(), timeout=5)
    # At its next round, not at the released record's expiry.
    assert time.monotonic() - stopped < TIMINGS.duration_seconds * 0.9
    b.stop.set()
    await asyncio.wait_for(b.task, timeout=5)  # type: ignore[arg-type]


async def test_a_standby_stopped_while_waiting_returns_without_operating() -> None:
    lease = Lease()
    lease.write(None, LeaseRecord("other", 15))
    b = Candidate(lease, "b").start()
    await asyncio.sleep(TIMINGS.retry_period * 3)
    b.stop.set()
    await asyncio.wait_for(b.task, timeout=5)  # type: ignore[arg-type]
    assert not b.operating.is_set()
    assert lease.stored and lease.stored.record.holder == "other"
