"""The watcher's Lease decisions (rbg_flows/watcher/lease.py): when a candidate takes, renews or leaves
the Lease, on its own monotonic clock; the record's wire form; the timings' invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from rbg_flows.incluster import default_namespace
from rbg_flows.watcher.lease import (
    LeaseRecord,
    LeaseTimings,
    Observed,
    claim,
    format_micro_time,
    identity,
    observe,
    parse_micro_time,
    released,
)

T = LeaseTimings.derived(15)  # 15 / 10 / 2, client-go's
WALL = datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC)
LATER = WALL + timedelta(seconds=5)


def held(holder: str, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(holder, 15, WALL, WALL, transitions)


def test_no_lease_is_created_held_by_the_candidate() -> None:
    assert claim(None, "me", 100.0, WALL, T) == LeaseRecord("me", 15, WALL, WALL, 0)


def test_a_live_lease_of_another_is_left_alone_until_its_duration_passes_on_our_clock() -> None:
    seen = Observed(held("other"), since=100.0)
    assert claim(seen, "me", 100.0, LATER, T) is None
    assert claim(seen, "me", 114.9, LATER, T) is None
    taken = claim(seen, "me", 115.0, LATER, T)
    assert taken == LeaseRecord("me", 15, LATER, LATER, 1)  # a new term: acquired now, one transition more


def test_expiry_counts_from_when_the_record_last_changed_not_from_its_renew_time() -> None:
    # The holder's renewTime is hours in the past by our wall clock (skew): still live while it changes.
    skewed = LeaseRecord("other", 15, WALL - timedelta(hours=3), WALL - timedelta(hours=3))
    first = observe(None, skewed, 100.0)
    assert claim(first, "me", 101.0, WALL, T) is None
    # Unchanged since: the first sighting stands, so it expires 15 s after it.
    again = observe(first, skewed, 110.0)
    assert again.since == 100.0 and claim(again, "me", 115.0, WALL, T) is not None
    # Renewed meanwhile: seen anew, live for another 15 s.
    renewed = observe(again, LeaseRecord("other", 15, skewed.acquire_time, WALL), 114.0)
    assert renewed.since == 114.0 and claim(renewed, "me", 128.0, WALL, T) is None


def test_the_holder_renews_keeping_its_acquire_time_and_transitions() -> None:
    mine = Observed(held("me", transitions=3), since=100.0)
    # Even past the duration on our clock: the record is ours, so a renewal, not a new term.
    assert claim(mine, "me", 200.0, LATER, T) == LeaseRecord("me", 15, WALL, LATER, 3)


def test_a_released_lease_is_taken_at_once() -> None:
    free = Observed(released(held("other", 2), LATER), since=100.0)
    assert free.record.holder == "" and free.record.duration_seconds == 1
    assert claim(free, "me", 100.0, LATER, T) == LeaseRecord("me", 15, LATER, LATER, 3)


def test_the_lease_duration_written_is_the_candidates_in_whole_seconds() -> None:
    assert claim(None, "me", 0.0, WALL, LeaseTimings.derived(6)) == LeaseRecord("me", 6, WALL, WALL)
    assert LeaseTimings.derived(6.2).duration_seconds == 7  # never shorter than asked


def test_the_record_round_trips_through_the_lease_spec() -> None:
    record = held("pod-a_12", transitions=4)
    spec = record.to_spec()
    assert spec == {
        "holderIdentity": "pod-a_12",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-02T01:02:03.456789Z",
        "renewTime": "2026-12-02T01:02:03.456789Z",
        "leaseTransitions": 4,
    }
    assert LeaseRecord.from_spec(spec) == record
    assert LeaseRecord.from_spec(None) == LeaseRecord.from_spec({}) == LeaseRecord()
    assert released(record, WALL).to_spec()["holderIdentity"] is None


def test_micro_times_are_utc() -> None:
    assert parse_micro_time("2026-12-02T02:02:03.456789+01:00") == WALL
    assert format_micro_time(WALL.astimezone(timezone(timedelta(hours=2)))) == "2026-12-02T01:02:03.456789Z"
    assert parse_micro_time(None) is None and format_micro_time(None) is None


def test_timings_default_to_client_gos_and_keep_its_ratios() -> None:
    assert (T.duration, T.renew_deadline, T.retry_period) == pytest.approx((15, 10, 2))
    short = LeaseTimings.derived(6)
    assert (short.renew_deadline, short.retry_period) == pytest.approx((4, 0.8))
    assert LeaseTimings.derived(6, renew_deadline=5, retry_period=1).renew_deadline == 5


@pytest.mark.parametrize(
    ("duration", "renew", "retry"),
    [(10, 10, 2), (10, 12, 2), (10, 5, 5), (10, 5, 0), (10, 2.3, 2)],
)
def test_timings_that_would_let_two_lead_are_refused(duration: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError):
        LeaseTimings.derived(duration, renew, retry)


def test_identity_names_the_host_and_the_process() -> None:
    assert identity("rbg-flows-watcher-7d9f", 42) == "rbg-flows-watcher-7d9f_42"
    assert identity() != identity(pid=1)


def test_the_lease_lives_in_the_pods_namespace(tmp_path: Path) -> None:
    sa = tmp_path / "namespace"
    assert default_namespace({"POD_NAMESPACE": "ops"}, sa) == "ops"
    assert default_namespace({}, sa) == "default"  # outside a pod
    sa.write_text("rbg-flows-system\n")
    assert default_namespace({}, sa) == "rbg-flows-system"
