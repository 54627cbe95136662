"""Does a set of pods fit on a set of nodes? Bin packing, exact within a step budget.

Each pod may only use the nodes it is allowed; a greedy best-fit answers most instances at once, and
a backtracking search (largest pods first, one branch per class of interchangeable nodes) settles the
rest. The budget keeps a pathological instance from costing more than a bounded time: past it the
answer is `None` (unknown), which callers treat as "does not fit" and report.
"""

from __future__ import annotations

from collections.abc import Sequence

Pod = tuple[int, Sequence[int]]  # (GPUs, indices of the nodes it may use)


def _greedy(pods: Sequence[Pod], free: list[int]) -> bool:
    for need, allowed in pods:
        best = -1
        for i in allowed:
            if free[i] >= need and (best < 0 or free[i] < free[best]):
                best = i
        if best < 0:
            return False
        free[best] -= need
    return True


def fits(pods: Sequence[Pod], free: Sequence[int], budget: int = 20_000) -> bool | None:
    """True when every pod can be given a node with room for it, False when provably not, None when
    the budget ran out first."""
    order = sorted(pods, key=lambda p: -p[0])
    if _greedy(order, list(free)):
        return True
    pools: dict[tuple[int, ...], int] = {}
    for need, allowed in order:
        key = tuple(sorted(allowed))
        pools[key] = pools.get(key, 0) + need
    if any(sum(free[i] for i in key) < need for key, need in pools.items()):
        return False
    # Two nodes with the same room left that the same pods may use are interchangeable: try one.
    member: dict[int, tuple[int, ...]] = {}
    for n, key in enumerate(pools):
        for i in key:
            member[i] = (*member.get(i, ()), n)
    left = list(free)
    steps = 0

    def place(k: int) -> bool | None:
        nonlocal steps
        if k == len(order):
            return True
        need, allowed = order[k]
        tried: set[tuple[int, tuple[int, ...]]] = set()
        for i in allowed:
            if left[i] < need or (left[i], member[i]) in tried:
                continue
            tried.add((left[i], member[i]))
            steps += 1
            if steps > budget:
                return None
            left[i] -= need
            got = place(k + 1)
            left[i] += need
            if got is not False:
                return got
        return False

    return place(0)
