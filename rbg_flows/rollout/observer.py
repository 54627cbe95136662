"""Watching a rollout from outside, as a user would: which pods of each role run the new version at
every watch event, the largest skew between roles seen, and every pod incarnation per ordinal (churn).

Pure: fed with pod watch events by the caller (tests and bench/upgrade.py use the same observer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

ROLE_LABEL = "rolebasedgroup.workloads.x-k8s.io/role"
JSON = dict[str, Any]


def pod_images(pod: JSON) -> tuple[str, ...]:
    return tuple(c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or [])


@dataclass
class RolloutObserver:
    """`is_new(pod)` says whether a pod runs the version being rolled out to; `replicas` is the size of
    each observed role (progress = new pods / replicas)."""

    replicas: dict[str, int]
    is_new: Callable[[JSON], bool]
    pairs: Iterable[tuple[str, str]] = ()
    new: dict[str, set[str]] = field(default_factory=dict)
    max_skew: Fraction = Fraction(0)
    worst: dict[str, int] = field(default_factory=dict)  # per-role new counts at the worst instant
    incarnations: dict[str, list[tuple[str, bool]]] = field(default_factory=dict)  # pod name -> (uid, new)

    def __post_init__(self) -> None:
        self.pairs = list(self.pairs)
        for role in self.replicas:
            self.new.setdefault(role, set())

    def counts(self) -> dict[str, int]:
        return {role: len(pods) for role, pods in self.new.items()}

    def on_event(self, event_type: str, pod: JSON) -> None:
        meta = pod["metadata"]
        role = (meta.get("labels") or {}).get(ROLE_LABEL)
        if role not in self.replicas:
            return
        name, uid = meta["name"], meta.get("uid", "")
        seen = self.incarnations.setdefault(name, [])
        if not seen or seen[-1][0] != uid:
            seen.append((uid, self.is_new(pod)))
        alive = event_type != "DELETED" and not meta.get("deletionTimestamp")
        if alive and self.is_new(pod):
            self.new[role].add(name)
        else:
            self.new[role].discard(name)
        self._sample()

    def _sample(self) -> None:
        progress = {
            role: Fraction(min(len(self.new[role]), n), n) if n else Fraction(1)
            for role, n in self.replicas.items()
        }
        for a, b in self.pairs:
            skew = abs(progress[a] - progress[b])
            if skew > self.max_skew:
                self.max_skew = skew
                self.worst = self.counts()

    def replacements(self, name: str) -> int:
        """How many times the pod of this name was replaced while observed."""
        return max(0, len(self.incarnations.get(name, [])) - 1)
