"""When a group whose role says RecreateRBGOnPodRestart is recreated after a pod failure (pure).

`restartPolicyConfig {baseDelaySeconds, maxDelaySeconds, maxRestarts}`: the first recreation is
immediate; each later one within the stability window waits min(base · 2^(n-1), max) after the previous
recreation ended (the group Ready again), n being the recreations already made in the window; a failure
once `maxRestarts` were made in the window ends in Failed instead of another loop. The window is twice
maxDelaySeconds: a group that ran for two of its longest backoffs without a failure is stable again, and
its count starts afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rbg_flows.api.rbg import RestartPolicyConfig


@dataclass(frozen=True)
class RestartDecision:
    recent: int  # recreations within the stability window before this one
    due: float  # when this recreation may start (same clock as the inputs)
    exceeded: bool  # maxRestarts reached: no recreation, the group is Failed


def stability_window(config: RestartPolicyConfig) -> float:
    return 2.0 * max(config.max_delay_seconds, config.base_delay_seconds)


def backoff(config: RestartPolicyConfig, recent: int) -> float:
    """The wait before a recreation after `recent` others within the window (0 for the first)."""
    if recent == 0:
        return 0.0
    return float(min(config.base_delay_seconds * 2 ** (recent - 1), config.max_delay_seconds))


def decide(config: RestartPolicyConfig, restarts: Sequence[float], now: float) -> RestartDecision:
    """What to do about a failure at `now`, given when the earlier recreations ended."""
    window = stability_window(config)
    recent = [t for t in restarts if now - t < window]
    exceeded = config.max_restarts is not None and len(recent) >= config.max_restarts
    due = max(recent) + backoff(config, len(recent)) if recent else now
    return RestartDecision(recent=len(recent), due=max(now, due), exceeded=exceeded)
