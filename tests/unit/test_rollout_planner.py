"""The coordinated-rollout step planner: worked examples and hypothesis properties.

The properties check the planner against an oracle written here from the rules in the planner's module
docstring (targets, batches, lead limits), not against the planner's own `resolve`, so a slip in the
planner's bookkeeping cannot hide behind the same slip in its checker.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Iterator, Mapping
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbg_flows.api import RoleBasedGroupSpec
from rbg_flows.rollout import (
    LockStepRule,
    RoleRollout,
    RolloutState,
    Step,
    coordination_percent,
    is_done,
    minimum_steps,
    plan_all,
    plan_step,
    resolve,
    role_from_spec,
    rule_from_coordination,
    state_from_spec,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------------------
# Oracle


def pct(value: int | str) -> int:
    return min(100, value if isinstance(value, int) else int(value.rstrip("%")))


class Oracle:
    """Targets, batches and lead limits of a state, straight from the documented rules."""

    def __init__(self, state: RolloutState) -> None:
        self.state = state
        self.target: dict[str, int] = {}
        self.batch: dict[str, int] = {}
        for role in state.roles:
            floor = role.partition
            batch = role.max_unavailable + role.max_surge
            for rule in state.rules:
                if role.name not in rule.roles:
                    continue
                if rule.partition is not None:
                    floor = max(floor, math.ceil(pct(rule.partition) * role.replicas / 100))
                if rule.max_unavailable is not None:
                    batch = min(batch, pct(rule.max_unavailable) * role.replicas // 100)
            self.target[role.name] = role.replicas - min(floor, role.replicas)
            self.batch[role.name] = max(1, batch)
        skew: dict[tuple[str, str], Fraction] = {}
        for rule in state.rules:
            if rule.max_skew is None:
                continue
            for a, b in itertools.permutations(rule.roles, 2):
                if self.target[a] and self.target[b]:
                    s = Fraction(pct(rule.max_skew), 100)
                    skew[(a, b)] = min(skew.get((a, b), s), s)
        self.limit = {(a, b): max(s, Fraction(1, self.target[a])) for (a, b), s in skew.items()}

    def progress(self, counts: Mapping[str, int]) -> dict[str, Fraction]:
        return {
            name: Fraction(1) if t == 0 else Fraction(min(counts[name], t), t)
            for name, t in self.target.items()
        }

    def leads(self, counts: Mapping[str, int]) -> dict[tuple[str, str], Fraction]:
        x = self.progress(counts)
        return {(a, b): x[a] - x[b] for a, b in self.limit}

    def valid(self, counts: Mapping[str, int]) -> bool:
        return all(lead <= self.limit[pair] for pair, lead in self.leads(counts).items())

    def done(self, counts: Mapping[str, int]) -> bool:
        return all(counts[name] >= t for name, t in self.target.items())

    def admissible(self, before: Mapping[str, int], after: Mapping[str, int]) -> bool:
        """Every corner of the step respects the invariant, or at least does not widen a lead that
        already exceeded its limit when the step began."""
        budget = {pair: max(self.limit[pair], lead) for pair, lead in self.leads(before).items()}
        for name, t in self.target.items():
            if not before[name] <= after[name] <= max(before[name], min(t, before[name] + self.batch[name])):
                return False
        return all(
            lead <= budget[pair]
            for corner in corners(before, after)
            for pair, lead in self.leads(corner).items()
        )


def corners(before: Mapping[str, int], after: Mapping[str, int]) -> Iterator[dict[str, int]]:
    """Each role at its old or its new count. Enough to cover every intermediate combination: the lead of
    a over b grows with a's count and shrinks with b's, so over the box [old, new]^roles it is largest at
    the corner (a new, b old), and every pair's worst case is a corner."""
    names = list(before)
    for choice in itertools.product((False, True), repeat=len(names)):
        yield {
            name: after[name] if moved else before[name] for name, moved in zip(names, choice, strict=True)
        }


def check_step(state: RolloutState, step: Step) -> None:
    oracle = Oracle(state)
    before = state.updated
    assert step.before == before
    after = step.after
    for name, t in oracle.target.items():
        assert before[name] <= after[name], f"{name} moved backwards"
        assert after[name] - before[name] <= oracle.batch[name], f"{name} moved more than its batch"
        assert after[name] <= max(before[name], t), f"{name} passed its target (partition floor)"
    for corner in corners(before, after):
        leads = oracle.leads(corner)
        for pair, lead in leads.items():
            if oracle.valid(before):
                assert lead <= oracle.limit[pair], f"{pair} lead {lead} at corner {corner}"
            else:
                assert lead <= max(oracle.limit[pair], oracle.leads(before)[pair]), f"{pair} lead grew"
    if not oracle.done(before):
        assert step.pods > 0, "no role advanced"


def walk(state: RolloutState) -> list[Step]:
    """plan_step until done, checking every step; compared with plan_all by the caller."""
    steps: list[Step] = []
    budget = sum(r.replicas for r in state.roles) + 1
    while not is_done(state):
        step = plan_step(state)
        check_step(state, step)
        steps.append(step)
        state = state.apply(step)
        assert len(steps) <= budget
    oracle = Oracle(state)
    assert oracle.done(state.updated)
    return steps


# ---------------------------------------------------------------------------------------------------------
# Strategies

NAMES = ("prefill", "decode", "router", "encode")


def fraction_field(low: int, high: int) -> st.SearchStrategy[int | str]:
    # Percent strings and (ext) integers, which the planner reads as percentages too.
    return st.integers(low, high).flatmap(lambda k: st.sampled_from([f"{k}%", k]))


@st.composite
def rollouts(draw: st.DrawFn, fresh: bool = True, max_roles: int = 4, max_replicas: int = 16) -> RolloutState:
    names = NAMES[: draw(st.integers(1, max_roles))]
    roles = []
    for name in names:
        replicas = draw(st.integers(0, max_replicas))
        roles.append(
            RoleRollout(
                name=name,
                replicas=replicas,
                updated=0 if fresh else draw(st.integers(0, replicas)),
                partition=draw(st.integers(0, replicas)),
                max_unavailable=draw(st.integers(0, 4)),
                max_surge=draw(st.integers(0, 3)),
            )
        )
    rules = []
    for i in range(draw(st.integers(1, 2))):
        members = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
        rules.append(
            LockStepRule(
                name=f"rule-{i}",
                roles=tuple(members),
                max_skew=draw(fraction_field(5, 100)),
                partition=draw(st.none() | fraction_field(0, 100)),
                max_unavailable=draw(st.none() | fraction_field(0, 100)),
            )
        )
    return RolloutState(tuple(roles), tuple(rules))


# ---------------------------------------------------------------------------------------------------------
# Properties


@PROPERTY
@given(rollouts(fresh=True))
def test_fresh_rollout_keeps_skew_invariant_through_every_step_and_corner(state: RolloutState) -> None:
    steps = walk(state)
    assert steps == plan_all(state)
    assert len(steps) >= minimum_steps(state)


@PROPERTY
@given(rollouts(fresh=False))
def test_any_start_progresses_never_widens_a_lead_and_terminates_at_target(state: RolloutState) -> None:
    steps = walk(state)
    assert steps == plan_all(state)
    assert len(steps) >= minimum_steps(state)
    final = state
    for step in steps:
        final = final.apply(step)
    oracle = Oracle(state)
    for role in state.roles:
        # Every role ends exactly at its target; one already past it (partition raised) is left alone.
        assert final.role(role.name).updated == max(role.updated, oracle.target[role.name])


@PROPERTY
@given(rollouts(fresh=False))
def test_a_single_step_always_advances_some_role(state: RolloutState) -> None:
    oracle = Oracle(state)
    step = plan_step(state)
    assert (step.pods > 0) == (not oracle.done(state.updated))


@PROPERTY
@given(rollouts(fresh=False))
def test_step_is_the_componentwise_largest_admissible_step(state: RolloutState) -> None:
    # Greedy exactness: no role could have moved one more pod, whatever the others do.
    oracle = Oracle(state)
    step = plan_step(state)
    assert oracle.admissible(state.updated, step.after)
    for name in step.after:
        bumped = {**step.after, name: step.after[name] + 1}
        assert not oracle.admissible(state.updated, bumped), f"{name} could have moved further"


def shortest_plan(state: RolloutState) -> int:
    """Breadth-first search over every admissible step: the true minimum number of steps."""
    oracle = Oracle(state)
    names = [r.name for r in state.roles]
    start = tuple(r.updated for r in state.roles)
    seen = {start}
    queue = deque([(start, 0)])
    while queue:
        counts, depth = queue.popleft()
        before = dict(zip(names, counts, strict=True))
        if oracle.done(before):
            return depth
        ranges = [
            range(c, max(c, min(oracle.target[n], c + oracle.batch[n])) + 1)
            for n, c in zip(names, counts, strict=True)
        ]
        for nxt in itertools.product(*ranges):
            after = dict(zip(names, nxt, strict=True))
            if nxt not in seen and oracle.admissible(before, after):
                seen.add(nxt)
                queue.append((nxt, depth + 1))
    raise AssertionError("no admissible plan reaches the target")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rollouts(fresh=False, max_roles=3, max_replicas=5))
def test_minimum_steps_is_a_floor_and_plan_all_is_optimal(state: RolloutState) -> None:
    # Each role's bound is nondecreasing in every role's count, so the greedy plan stays componentwise
    # ahead of any other admissible plan and finishes first; the closed-form floor stays below both.
    best = shortest_plan(state)
    assert minimum_steps(state) <= best == len(plan_all(state))


@st.composite
def symmetric_rollouts(draw: st.DrawFn) -> RolloutState:
    replicas = draw(st.integers(0, 16))
    partition = draw(st.integers(0, replicas))
    updated = draw(st.integers(0, replicas))
    mu, ms = draw(st.integers(0, 4)), draw(st.integers(0, 3))
    roles = tuple(RoleRollout(name, replicas, updated, partition, mu, ms) for name in ("prefill", "decode"))
    rule = LockStepRule(
        "pd",
        ("prefill", "decode"),
        max_skew=draw(fraction_field(5, 100)),
        partition=draw(st.none() | fraction_field(0, 100)),
        max_unavailable=draw(st.none() | fraction_field(0, 100)),
    )
    return RolloutState(roles, (rule,))


@PROPERTY
@given(symmetric_rollouts())
def test_minimum_steps_is_exact_for_two_symmetric_roles(state: RolloutState) -> None:
    assert len(plan_all(state)) == minimum_steps(state)


# ---------------------------------------------------------------------------------------------------------
# Examples


def pd(
    prefill: RoleRollout, decode: RoleRollout, max_skew: int | str | None = "25%", **rule: Any
) -> RolloutState:
    return RolloutState((prefill, decode), (LockStepRule("pd", ("prefill", "decode"), max_skew, **rule),))


def sequence(state: RolloutState) -> list[tuple[int, ...]]:
    return [tuple(step.after.values()) for step in walk(state)]


def test_prefill_8_decode_8_skew_25_batch_2_moves_both_roles_every_step() -> None:
    state = pd(RoleRollout("prefill", 8, max_unavailable=2), RoleRollout("decode", 8, max_unavailable=2))
    assert sequence(state) == [(2, 2), (4, 4), (6, 6), (8, 8)]
    assert minimum_steps(state) == 4


def test_skew_caps_a_large_batch() -> None:
    # Batch 8 would finish in one step; a 25% lead limit holds each role to two pods ahead of the other.
    state = pd(RoleRollout("prefill", 8, max_unavailable=8), RoleRollout("decode", 8, max_unavailable=8))
    assert sequence(state) == [(2, 2), (4, 4), (6, 6), (8, 8)]
    assert minimum_steps(state) == 4


def test_unequal_roles_keep_their_ratio() -> None:
    # 8 prefill : 4 decode (2:1), the KEP's motivating shape: both reach 25%, 50%, ... together.
    state = pd(RoleRollout("prefill", 8, max_unavailable=2), RoleRollout("decode", 4))
    assert sequence(state) == [(2, 1), (4, 2), (6, 3), (8, 4)]


@pytest.mark.parametrize("max_skew", ["5%", "25%", "50%", 10])
def test_single_replica_decode_never_stalls(max_skew: int | str) -> None:
    state = pd(RoleRollout("prefill", 4), RoleRollout("decode", 1), max_skew)
    steps = walk(state)
    assert [tuple(s.after.values()) for s in steps] == [(1, 1), (2, 1), (3, 1), (4, 1)]
    # The decode flips while no role is behind it (both at 0%); prefill then catches up in its own batches.
    # Its lead never exceeds its single pod, and prefill never leads it by more than one prefill pod.
    assert len(steps) == minimum_steps(state) == 4


def test_single_replica_roles_on_both_sides() -> None:
    state = pd(RoleRollout("prefill", 1), RoleRollout("decode", 1), "5%")
    assert sequence(state) == [(1, 1)]


def test_coarse_role_waits_for_the_laggard() -> None:
    # 2 decodes (50% a pod) against 8 prefills under 25%: a decode pod goes when no role is behind the
    # decode's progress, and then waits until prefill has caught up before the second one.
    state = pd(RoleRollout("prefill", 8, max_unavailable=2), RoleRollout("decode", 2))
    assert sequence(state) == [(2, 1), (4, 1), (6, 2), (8, 2)]


def test_role_in_two_rules_gets_the_tightest_bounds() -> None:
    state = RolloutState(
        (
            RoleRollout("prefill", 8, max_unavailable=8),
            RoleRollout("decode", 8, max_unavailable=8),
            RoleRollout("router", 4, max_unavailable=4),
        ),
        (
            LockStepRule(
                "wide", ("prefill", "decode", "router"), "50%", partition="25%", max_unavailable="50%"
            ),
            LockStepRule("tight", ("decode", "router"), 25, partition="50%", max_unavailable="25%"),
        ),
    )
    c = resolve(state)
    # router: floor max(ceil(25% of 4), ceil(50% of 4)) = 2; batch min(4, 50% of 4, 25% of 4) = 1.
    assert (c.roles["router"].target, c.roles["router"].batch) == (2, 1)
    assert (c.roles["decode"].target, c.roles["decode"].batch) == (4, 2)
    assert (c.roles["prefill"].target, c.roles["prefill"].batch) == (6, 4)
    # decode-router is bound by both rules: 25% wins; router is coarse (one pod = 50%).
    assert c.lead_limits[("decode", "router")] == Fraction(1, 4)
    assert c.lead_limits[("router", "decode")] == Fraction(1, 2)
    assert c.lead_limits[("prefill", "decode")] == Fraction(1, 2)
    steps = walk(state)
    assert [tuple(s.after.values()) for s in steps] == [(3, 1, 1), (4, 3, 1), (6, 3, 2), (6, 4, 2)]
    assert steps[-1].after == {"prefill": 6, "decode": 4, "router": 2}


def test_partition_floors_are_respected() -> None:
    # The rule's 50% keeps 4 of 8 prefills and 2 of 4 decodes old: tighter than the roles' own partitions
    # (2 and 1), so the targets are 4 and 2. Progress is measured against them: decode, a coarse role at
    # target 2 (one pod = 50%), leads by one pod at most and both end at 100% of their targets.
    state = pd(
        RoleRollout("prefill", 8, partition=2, max_unavailable=2),
        RoleRollout("decode", 4, partition=1),
        partition="50%",
    )
    assert sequence(state) == [(1, 1), (3, 1), (3, 2), (4, 2)]
    # A role's own partition tighter than the rule's wins: 5 of 8 prefills stay old.
    state = pd(
        RoleRollout("prefill", 8, partition=5, max_unavailable=2), RoleRollout("decode", 4), partition="50%"
    )
    assert sequence(state)[-1] == (3, 2)


def test_rule_partition_matches_rbg_kep_example() -> None:
    # KEP-30: partition 80% on (200 prefill, 100 decode) keeps ordinals 0..159 and 0..79 old.
    state = pd(RoleRollout("prefill", 200), RoleRollout("decode", 100), "1%", partition="80%")
    c = resolve(state)
    assert (c.roles["prefill"].target, c.roles["decode"].target) == (40, 20)


def test_a_role_already_ahead_waits_for_the_others() -> None:
    state = pd(
        RoleRollout("prefill", 8, updated=6, max_unavailable=2), RoleRollout("decode", 8, max_unavailable=2)
    )
    assert sequence(state) == [(6, 2), (6, 4), (6, 6), (8, 8)]


def test_rollback_is_the_same_planner() -> None:
    # A rollout stopped at prefill 6/8 and decode 2/8 new pods is rolled back: count the pods on the old
    # revision (2 and 6) and plan toward it; decode, now ahead, waits for prefill.
    state = pd(RoleRollout("prefill", 8, updated=2, max_unavailable=2), RoleRollout("decode", 8, updated=6))
    assert sequence(state) == [(4, 6), (6, 6), (8, 7), (8, 8)]


def test_role_with_nothing_to_update_is_done_and_ignored() -> None:
    state = RolloutState(
        (
            RoleRollout("prefill", 4, max_unavailable=2),
            RoleRollout("decode", 0),
            RoleRollout("router", 2, partition=2),
        ),
        (LockStepRule("all", ("prefill", "decode", "router"), "5%"),),
    )
    assert resolve(state).lead_limits == {}
    assert sequence(state) == [(2, 0, 0), (4, 0, 0)]
    done = RolloutState((RoleRollout("a", 0),), (LockStepRule("r", ("a",), "10%"),))
    assert plan_all(done) == [] and minimum_steps(done) == 0 and is_done(done)


def test_rule_without_max_skew_only_caps_and_partitions() -> None:
    state = pd(
        RoleRollout("prefill", 8, max_unavailable=8), RoleRollout("decode", 2), None, max_unavailable="50%"
    )
    assert sequence(state) == [(4, 1), (8, 2)]


def test_integer_coordination_fields_are_percentages() -> None:
    assert LockStepRule("r", ("a",), 25).skew == Fraction(1, 4)
    assert LockStepRule("r", ("a",), "25%").skew == Fraction(1, 4)
    assert coordination_percent(150) == 100
    state = pd(RoleRollout("prefill", 8, max_unavailable=8), RoleRollout("decode", 8), 50, max_unavailable=25)
    c = resolve(state)
    assert c.roles["prefill"].batch == 2 and c.lead_limits[("prefill", "decode")] == Fraction(1, 2)


def test_violations_reports_leads_past_their_limit() -> None:
    state = pd(RoleRollout("prefill", 8), RoleRollout("decode", 8))
    assert resolve(state).violations({"prefill": 3, "decode": 0}) == [
        ("prefill", "decode", Fraction(3, 8), Fraction(1, 4))
    ]


@pytest.mark.parametrize(
    "build",
    [
        lambda: RolloutState((RoleRollout("a", 1), RoleRollout("a", 2))),
        lambda: RolloutState((RoleRollout("a", 1),), (LockStepRule("r", ("a", "ghost"), "10%"),)),
        lambda: RoleRollout("a", 2, updated=3),
        lambda: RoleRollout("a", -1),
        lambda: RoleRollout("a", True),  # bool is an int to Python, not a count
        lambda: LockStepRule("r", (), "10%"),
        lambda: LockStepRule("r", ("a", "a"), "10%"),
        lambda: LockStepRule("r", ("a",), "ten%"),
    ],
)
def test_malformed_input_is_refused(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


def test_state_from_the_api_spec() -> None:
    template = {"spec": {"containers": [{"name": "main", "image": "engine"}]}}
    spec = RoleBasedGroupSpec.model_validate(
        {
            "roles": [
                {
                    "name": "prefill",
                    "replicas": 10,
                    "template": template,
                    "rolloutStrategy": {"rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "10%"}},
                },
                {"name": "decode", "replicas": 5, "template": template},
                {"name": "router", "replicas": 1, "template": template},
            ],
            "coordination": [
                {
                    "name": "pd",
                    "roles": ["prefill", "decode"],
                    "strategy": {"rollingUpdate": {"maxSkew": 20}},
                },
                {
                    "name": "scale",
                    "roles": ["prefill", "router"],
                    "strategy": {"scaling": {"maxSkew": "10%"}},
                },
            ],
        }
    )
    assert rule_from_coordination(spec.coordination[1]) is None
    prefill = role_from_spec(spec.roles[0], updated=12)
    assert (prefill.updated, prefill.max_unavailable, prefill.max_surge) == (10, 2, 1)
    state = state_from_spec(spec, {"prefill": 0}, roles=["prefill", "decode"])
    assert [r.name for r in state.roles] == ["prefill", "decode"]
    assert state.rules == (LockStepRule("pd", ("prefill", "decode"), 20),)
    assert sequence(state) == [(2, 1), (4, 2), (6, 3), (8, 4), (10, 5)]
