"""Which groups name which ClusterEngineRuntimeProfiles, kept from the watch events themselves (pure).

A kopf index would answer the same question, but kopf holds every handler of the watcher until every
indexed resource is listed in every watched namespace: a namespace that cannot be listed (a Role
missing there, a namespace going away) would stop the signals of every group. This map is updated by
the handlers instead, and covers both orders in which a start can see things: a profile seen before a
group that names it is told to the group when the group is first seen, and the other way round.
"""

from __future__ import annotations

from rbg_flows.messages import ProfileChange

GroupKey = tuple[str, str]  # (namespace, name)


class ProfileUsers:
    def __init__(self) -> None:
        self._named: dict[GroupKey, frozenset[str]] = {}
        self._latest: dict[str, ProfileChange] = {}

    def group_seen(self, group: GroupKey, profiles: list[str]) -> list[ProfileChange]:
        """Record the profiles the group names; returns what is known of those it did not name before
        (all of them on first sight), for the group to hear of."""
        before = self._named.get(group, frozenset())
        now = frozenset(profiles)
        if now:
            self._named[group] = now
        else:
            self._named.pop(group, None)
        return [self._latest[p] for p in profiles if p not in before and p in self._latest]

    def group_gone(self, group: GroupKey) -> None:
        self._named.pop(group, None)

    def profile_seen(self, change: ProfileChange) -> list[GroupKey]:
        """Record the profile's latest change; returns the groups naming it, in order."""
        self._latest[change.name] = change
        return sorted(g for g, names in self._named.items() if change.name in names)

    def profile_gone(self, name: str) -> None:
        self._latest.pop(name, None)
