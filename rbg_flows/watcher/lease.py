"""Leader election over a coordination.k8s.io/v1 Lease: the pure part (timings, the Lease's record, and
whether to take, renew or leave it), the rules client-go's leader election follows.

A candidate never trusts another process's clock: a record held by someone else expires when it has not
*changed* for its `leaseDurationSeconds`, measured on this process's monotonic clock from the moment this
process first saw it (the holder's `renewTime` is written with the holder's wall clock, which may be skewed).
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

# client-go's ratios (duration 15 s, renew deadline 10 s, retry period 2 s) on a shorter default duration: a
# standby takes over about the duration plus one or two retry periods after the holder died (10-13 s here,
# within the 15 s the targets allow; client-go's 15 s would be 17-19 s). Tests use a few seconds.
DEFAULT_DURATION = 10.0
RENEW_RATIO = 10 / 15
RETRY_RATIO = 2 / 15
# A candidate's retries are spread by up to this factor, so standbys do not knock in step (client-go's).
JITTER = 1.2


@dataclass(frozen=True)
class LeaseTimings:
    duration: float = DEFAULT_DURATION  # how long a record that stopped changing keeps others out
    renew_deadline: float = DEFAULT_DURATION * RENEW_RATIO  # the holder gives up when not renewed by then
    retry_period: float = DEFAULT_DURATION * RETRY_RATIO  # between two attempts, leading or not

    @classmethod
    def derived(
        cls, duration: float, renew_deadline: float | None = None, retry_period: float | None = None
    ) -> LeaseTimings:
        """The timings for a duration, client-go's ratios for whatever is not given. Checked."""
        timings = cls(
            duration,
            duration * RENEW_RATIO if renew_deadline is None else renew_deadline,
            duration * RETRY_RATIO if retry_period is None else retry_period,
        )
        timings.check()
        return timings

    @property
    def duration_seconds(self) -> int:
        # The Lease stores whole seconds; rounding up never lets a record expire before the holder's
        # renew deadline has passed.
        return max(1, math.ceil(self.duration))

    def check(self) -> None:
        """client-go's invariants: the holder must stop before a standby may take over, and retries fit in
        the renew deadline."""
        if not self.retry_period > 0:
            raise ValueError("the retry period must be positive")
        if not self.duration > self.renew_deadline:
            raise ValueError("the lease duration must be greater than the renew deadline")
        if not self.renew_deadline > self.retry_period * JITTER:
            raise ValueError(f"the renew deadline must be greater than {JITTER} x the retry period")


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec: who holds it, for how long, since when; `holder` '' when released."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=parse_micro_time(spec.get("acquireTime")),
            renew_time=parse_micro_time(spec.get("renewTime")),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder or None,
            "leaseDurationSeconds": self.duration_seconds,
            "acquireTime": format_micro_time(self.acquire_time),
            "renewTime": format_micro_time(self.renew_time),
            "leaseTransitions": self.transitions,
        }


@dataclass(frozen=True)
class Observed:
    """A record as this process last saw it, and when (monotonic seconds) it first saw it so."""

    record: LeaseRecord
    since: float


def observe(previous: Observed | None, record: LeaseRecord, now: float) -> Observed:
    """A record unchanged since the last look keeps its first sighting: that is what it expires from."""
    if previous is not None and previous.record == record:
        return previous
    return Observed(record, now)


def held_by_another(observed: Observed, me: str, now: float) -> bool:
    record = observed.record
    return bool(record.holder) and record.holder != me and now < observed.since + record.duration_seconds


def claim(
    observed: Observed | None, me: str, now: float, wall: datetime, timings: LeaseTimings
) -> LeaseRecord | None:
    """The record to write to take or keep the lease, or None while another holder's record is live.
    `observed` None: there is no Lease yet (create it)."""
    if observed is None:
        return LeaseRecord(me, timings.duration_seconds, wall, wall, 0)
    if held_by_another(observed, me, now):
        return None
    record = observed.record
    if record.holder == me:
        return replace(record, duration_seconds=timings.duration_seconds, renew_time=wall)
    # Released or expired: a new term.
    return LeaseRecord(me, timings.duration_seconds, wall, wall, record.transitions + 1)


def released(record: LeaseRecord, wall: datetime) -> LeaseRecord:
    """What a holder stopping cleanly writes: no holder, so a standby takes over at its next attempt
    (the 1 s duration, as client-go writes, covers a candidate that only looks at expiry)."""
    return replace(record, holder="", duration_seconds=1, renew_time=wall)


def parse_micro_time(value: str | None) -> datetime | None:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, `Z`) as an aware datetime."""
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def format_micro_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def identity(hostname: str | None = None, pid: int | None = None) -> str:
    """Who holds the lease: the pod's name (its hostname) and the process, unique among candidates."""
    return f"{hostname or socket.gethostname()}_{pid if pid is not None else os.getpid()}"


def lease_name(cluster_id: str) -> str:
    return f"rbg-flows-watcher-{cluster_id}"
