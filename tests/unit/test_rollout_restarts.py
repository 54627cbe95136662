"""Backoff between group recreations and the maxRestarts stop (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from rbg_flows.api.rbg import RestartPolicyConfig
from rbg_flows.rollout.restarts import backoff, decide, stability_window

CONFIG = RestartPolicyConfig(base_delay_seconds=30, max_delay_seconds=600, max_restarts=3)


def test_the_first_recreation_is_immediate_and_later_ones_double() -> None:
    assert decide(CONFIG, [], 1000.0).due == 1000.0
    assert [backoff(CONFIG, n) for n in range(7)] == [0, 30, 60, 120, 240, 480, 600]
    # One recreation 10 s ago: the next waits 30 s after it.
    d = decide(CONFIG, [990.0], 1000.0)
    assert (d.recent, d.due, d.exceeded) == (1, 1020.0, False)


def test_max_restarts_within_the_window_ends_in_failed() -> None:
    assert decide(CONFIG, [100.0, 200.0], 300.0).exceeded is False
    assert decide(CONFIG, [100.0, 200.0, 250.0], 300.0).exceeded is True
    unlimited = RestartPolicyConfig()
    assert decide(unlimited, [float(t) for t in range(50)], 60.0).exceeded is False


def test_a_stable_period_resets_the_count() -> None:
    window = stability_window(CONFIG)
    assert window == 1200
    d = decide(CONFIG, [100.0, 200.0, 250.0], 250.0 + window)
    assert (d.recent, d.exceeded, d.due) == (0, False, 250.0 + window)


@given(
    base=st.integers(0, 100),
    top=st.integers(0, 1000),
    times=st.lists(st.floats(0, 10_000), max_size=8),
    now=st.floats(0, 20_000),
)
def test_a_recreation_never_waits_more_than_max_after_the_last_one(
    base: int, top: int, times: list[float], now: float
) -> None:
    config = RestartPolicyConfig(base_delay_seconds=base, max_delay_seconds=top)
    past = [t for t in times if t <= now]
    d = decide(config, past, now)
    assert d.due >= now
    recent = [t for t in past if now - t < stability_window(config)]
    if recent:
        assert d.due <= max(now, max(recent) + max(top, 0))
    else:
        assert d.due == now
