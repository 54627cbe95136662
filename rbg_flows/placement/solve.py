"""Choose a domain for each component of a group: the highest score that fits, found by a bounded
branch-and-bound search over components.

Score: each component counts its communicating pod pairs times the tier its domain guarantees, capped
at the level asked for (a group that asked for RDMA gains nothing from taking an NVLink domain another
group may need). Among equal scores the tie-breaks are, in order: a domain of the asked level's own kind
(an RDMA block for `rdma`, not a node inside one), the least room left over (best fit), the domain's
label key and value. Components are searched largest first; a branch is cut when even every remaining
component at its best tier cannot beat the best found, so the first complete assignment found in this
order that no other beats is returned. The search is exhaustive unless its step budget runs out,
which `Decision.complete` says.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from rbg_flows.placement import pack
from rbg_flows.placement.demand import Component
from rbg_flows.placement.tiers import DOMAIN_NOUN, Tier
from rbg_flows.placement.topology import Cluster, Domain

# Feasibility checks one decision may make; far beyond what any real group needs (a group's
# components are few), it only bounds a pathological instance.
SEARCH_BUDGET = 5_000


@dataclass(frozen=True)
class Choice:
    component: Component
    domain: Domain | None  # None: left to the scheduler (Preferred, and nothing fits)
    tier: Tier  # what the placement guarantees between the component's pods
    spilled: bool = False  # kept in its earlier domain, which no longer holds all of it


@dataclass(frozen=True)
class Decision:
    choices: tuple[Choice, ...]
    score: int
    best_possible: int  # every component at the level asked for
    complete: bool  # the search ran to the end: the score is the optimum
    error: str | None = None  # Required, and nothing fits: why

    @property
    def tier(self) -> Tier:
        """The worst tier among placed components (what the group as a whole obtained)."""
        return min((c.tier for c in self.choices), default=Tier.NONE)


@dataclass(frozen=True)
class _Candidate:
    domain: Domain | None
    value: int  # capped tier


_NOWHERE = _Candidate(None, 0)


def eligible(cluster: Cluster, domain: Domain, exclusive: bool) -> bool:
    return not exclusive or not any(cluster.nodes[i].tenants for i in domain.nodes)


def _room(cluster: Cluster, domain: Domain) -> int:
    free = cluster.free_gpus
    return sum(free[i] for i in domain.nodes)


def candidates(
    cluster: Cluster, comp: Component, level: Tier, required: bool, exclusive: bool
) -> Iterator[_Candidate]:
    """Domains that could hold `comp` by room, best first; for Preferred, ending with "anywhere".

    Lazily: tier groups in order of (capped tier, distance above the level), and in each the domains by
    room from the least that suffices (best fit), so a decision usually reads a handful of domains out of
    thousands."""
    need, biggest = comp.gpus, (comp.pods[0] if comp.pods else 0)
    tiers = sorted(
        (t for t in cluster.by_tier if not required or t >= level),
        key=lambda t: (-min(t, level), max(0, t - level)),
    )
    for tier in tiers:
        value = int(min(tier, level))
        order = cluster.by_tier[tier]
        for k in order[bisect.bisect_left(cluster.rooms_by_tier[tier], need) :]:
            d = cluster.domains[k]
            if cluster.largest[k] >= biggest and eligible(cluster, d, exclusive):
                yield _Candidate(d, value)
    if not required:
        yield _NOWHERE


class _Seen(Sequence[_Candidate]):
    """A lazy candidate stream read again by later branches of the search without recomputing it."""

    def __init__(self, source: Iterator[_Candidate]) -> None:
        self._source, self._items = source, list[_Candidate]()

    def __iter__(self) -> Iterator[_Candidate]:
        k = 0
        while True:
            if k == len(self._items):
                nxt = next(self._source, None)
                if nxt is None:
                    return
                self._items.append(nxt)
            yield self._items[k]
            k += 1

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, k: int) -> _Candidate:  # type: ignore[override]
        return self._items[k]


def _fits(cluster: Cluster, chosen: Sequence[tuple[Component, Domain | None]], budget: int) -> bool | None:
    pods = [(g, d.nodes) for comp, d in chosen if d is not None for g in comp.pods if g]
    return pack.fits(pods, cluster.free_gpus, budget)


def solve(
    cluster: Cluster,
    comps: Sequence[Component],
    *,
    level: Tier,
    required: bool,
    exclusive: bool = False,
    pinned: Mapping[str, tuple[int, str, str]] | None = None,
    budget: int = SEARCH_BUDGET,
) -> Decision:
    comps = list(comps)
    best_possible = sum(c.pairs * level for c in comps)
    by_ident = cluster.by_ident
    lists: list[Sequence[_Candidate]] = []
    spilled: set[str] = set()
    for comp in comps:
        kept = by_ident.get((pinned or {}).get(comp.name, (-1, "", "")))
        if kept is None:
            lists.append(_Seen(candidates(cluster, comp, level, required, exclusive)))
            continue
        # Placed before: stay (moving would restart running pods). Growth that no longer fits fails a
        # Required group and spills a Preferred one; its tier is then that of the smallest domain
        # around the old one that holds it.
        if _fits(cluster, [(comp, kept)], budget):
            lists.append([_Candidate(kept, min(kept.tier, level))])
        elif required:
            return Decision(
                (),
                0,
                best_possible,
                True,
                f"{comp.name} grew beyond its {DOMAIN_NOUN[kept.tier]} {kept.value}: needs {comp.gpus} GPUs, "
                f"it has {_room(cluster, kept)} free",
            )
        else:
            spilled.add(comp.name)
            lists.append([_Candidate(kept, 0)])
    # Candidates come best first: the first one's value bounds what the component can add.
    bounds = [next(iter(cs), _NOWHERE).value * comp.pairs for cs, comp in zip(lists, comps, strict=True)]
    rest = [sum(bounds[k:]) for k in range(len(comps) + 1)]
    best: list[_Candidate] | None = None
    best_score = -1
    steps = 0
    complete = True

    def search(k: int, chosen: list[_Candidate], score: int) -> None:
        nonlocal best, best_score, steps, complete
        if k == len(comps):
            if score > best_score:
                best, best_score = list(chosen), score
            return
        for cand in lists[k]:
            gained = score + cand.value * comps[k].pairs
            if gained + rest[k + 1] <= best_score:
                break  # candidates come best first: none after this one can do better
            steps += 1
            if steps > budget:
                complete = False
                return
            trial = [*chosen, cand]
            pairs = [(c, t.domain) for c, t in zip(comps, trial, strict=False)]
            ok = True if cand.domain is None or comps[k].name in spilled else _fits(cluster, pairs, budget)
            if ok is None:
                complete = False
            if ok:
                search(k + 1, trial, gained)
            if not complete:
                return

    search(0, [], 0)
    if best is None:
        return Decision((), 0, best_possible, complete, _why(cluster, comps, level, exclusive, complete))
    choices = tuple(
        _choice(cluster, comp, cand, comp.name in spilled, budget)
        for comp, cand in zip(comps, best, strict=True)
    )
    return Decision(choices, best_score, best_possible, complete)


def _choice(cluster: Cluster, comp: Component, cand: _Candidate, spilled: bool, budget: int) -> Choice:
    if cand.domain is None:
        return Choice(comp, None, Tier.NONE)
    if not spilled:
        return Choice(comp, cand.domain, cand.domain.tier)
    inner = set(cand.domain.nodes)
    around = sorted(
        (d for d in cluster.domains if inner <= set(d.nodes) and d.tier < cand.domain.tier),
        key=lambda d: -d.tier,
    )
    tier = next((d.tier for d in around if _fits(cluster, [(comp, d)], budget)), Tier.NONE)
    return Choice(comp, cand.domain, tier, spilled=True)


def _why(cluster: Cluster, comps: Sequence[Component], level: Tier, exclusive: bool, complete: bool) -> str:
    noun = DOMAIN_NOUN[level]
    if not complete:
        return f"no placement at {noun} level found within the search budget"
    of = " that no other group uses" if exclusive else ""
    for comp in comps:
        usable = [d for d in cluster.domains if d.tier >= level and eligible(cluster, d, exclusive)]
        if any(_fits(cluster, [(comp, d)], SEARCH_BUDGET) for d in usable):
            continue
        room = max((_room(cluster, d) for d in usable), default=0)
        who = f"{comp.name}" if "+" in comp.name or "/" in comp.name else f"role {comp.name}"
        if room >= comp.gpus:
            return (
                f"{who} needs {comp.gpus} GPUs in one {noun}; the best {noun}{of} has {room} free, "
                f"but not in pieces that fit its {comp.pods[0]}-GPU pods"
            )
        return f"{who} needs {comp.gpus} GPUs in one {noun}; the best {noun}{of} has {room} free"
    names = ", ".join(c.name for c in comps)
    return f"{names} each fit in one {noun}, but not all at once"
