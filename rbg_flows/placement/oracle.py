"""The exhaustive optimum of a small placement instance: every combination of domains, each checked by
exact packing. Exponential; the reference that tests and bench/placement.py hold the search to."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

from rbg_flows.placement import pack
from rbg_flows.placement.demand import Component
from rbg_flows.placement.solve import eligible
from rbg_flows.placement.tiers import Tier
from rbg_flows.placement.topology import Cluster, Domain


def optimum(
    cluster: Cluster, comps: Sequence[Component], *, level: Tier, required: bool, exclusive: bool = False
) -> int | None:
    """The best score any feasible assignment reaches, or None when none is feasible."""
    options: list[list[Domain | None]] = []
    for _ in comps:
        domains: list[Domain | None] = [
            d
            for d in cluster.domains
            if (not required or d.tier >= level) and eligible(cluster, d, exclusive)
        ]
        options.append(domains if required else [*domains, None])
    best: int | None = None
    free = [n.free for n in cluster.nodes]
    for combo in product(*options):
        score = sum(c.pairs * min(d.tier, level) for c, d in zip(comps, combo, strict=True) if d is not None)
        if best is not None and score <= best:
            continue
        pods = [(g, d.nodes) for c, d in zip(comps, combo, strict=True) if d is not None for g in c.pods if g]
        if pack.fits(pods, free, budget=10**9):
            best = score
    return best
