"""Step planner for coordinated (lock-step) rolling upgrades of the roles of a RoleBasedGroup.

Pure: no I/O, no clock, no Kubernetes objects. The caller reads how many pods of each role already run
the revision being rolled out to, asks `plan_step` for the next updated count of every role, drives the
workloads there, waits, and asks again. `plan_all` is the same loop on paper (for previews, tests and the
benchmark); `minimum_steps` is the floor no admissible plan can beat.

Model
-----
A role has `replicas` N, `updated` u (pods already on the rollout's revision), a partition floor p
(ordinals below p keep the old revision) and a per-step batch. Its target is N - p and its progress is
u / target, a fraction in [0, 1]; all arithmetic is exact (`fractions.Fraction`), so a skew of exactly
maxSkew is allowed and never lost to rounding.

Decisions (each one a choice RBG leaves open; the reasons are part of the contract)
---------------------------------------------------------------------------------
1. Coordination fields are fractions, and an integer k means k%. RBG's coordination rollingUpdate
   accepts only percent strings; our (ext) integers are read as percentages for maxSkew, partition and
   maxUnavailable alike, so a number means the same fraction for every role of a rule whatever its size
   (an absolute count would mean 50% of one role and 5% of another). Values above 100 are capped at 100%.
2. maxSkew unset means the rule puts no bound on skew (RBG: "defaults to nil"); its partition and
   maxUnavailable still apply.
3. A rule's partition has the Kubernetes meaning RBG gives it: the fraction of each role's replicas that
   keeps the old revision, rounded up like a role's own percentage partition (RBG's KEP: 80% of 200
   prefill pods keeps ordinals 0..159 old). Every role of the rule thus stops at the same share of new
   pods. RBG says the rule's partition overrides the role's; we take the largest of the role's own
   partition and those of all its rules, so the planner never updates a pod the user pinned anywhere
   (identical to RBG whenever the role leaves its own partition at 0, as RBG's KEP expects of
   coordinated roles).
4. A rule's maxUnavailable caps the pods a role may move per step: that fraction of the role's replicas,
   rounded down like a role's maxUnavailable. A role's batch is min(maxUnavailable + maxSurge, every
   rule cap), and at least 1 while the role is short of its target, so a cap that rounds to 0 on a small
   role cannot freeze the rollout.
5. A role with target 0 (nothing to update) is done, progress 1, and takes no part in skew: it holds no
   mix of revisions to keep in step with anything, and counting it as 100% ahead would only make
   every other role look late.
6. The skew invariant, in lead form. For two roles a, b of a rule, a may lead b by at most
       limit(a over b) = max(maxSkew, 1 / target_a),
   and a pair in several rules takes the smallest maxSkew. For roles whose single pod is worth at most
   maxSkew this is exactly |progress_a - progress_b| <= maxSkew. The second term is the single-pod
   exemption: a role with few replicas (a 1-replica decode jumps 0 -> 100% in one pod) could otherwise
   never move under a small maxSkew and the rollout would stall. It may run ahead by one of its own
   pods, which it can take exactly when no role of its rules is behind its current progress (lead
   after the jump <= 1 / target_a <=> every other role is at or above its current level), so at the
   start of a rollout, with every role at 0%, its first pod goes in the first step; roles that are not
   coarse stay within maxSkew of it. No role ever leads by more than maxSkew or one of its own pods,
   whichever is larger.
7. During a step pods finish in an order nobody knows, so every combination with each role anywhere
   between its old and new count must satisfy the invariant. The lead of a over b grows with a's count
   and shrinks with b's, so over that box it peaks at the corner "a new, b old" (checking the corners is
   therefore enough, and the state after the step is one of them). That makes the constraints decouple:
   a role's largest admissible new count depends only on the old counts of the others, so every role
   may move to its own maximum at once and the result is still admissible. The greedy is exact: the
   step it returns is the componentwise-largest admissible step, which maximises the progress of every
   role, hence the total, and advances many roles per step (the reference controller moves only the
   slowest role per round). "Lowest progress first" needs no ordering here.
   It is also optimal over whole plans: a role's largest admissible count is nondecreasing in every
   role's current count, so by induction the greedy state stays componentwise ahead of the state of any
   other admissible plan after the same number of steps and reaches the targets no later. len(plan_all)
   is therefore the exact minimum for the invariant (checked against a breadth-first search in tests).
8. Liveness (proved in the docstring of `plan_step`, checked by property tests): while some role is short
   of its target, the least advanced unfinished role can always move at least one pod.
9. A state that already breaks the invariant (an operator moved pods by hand, a rule was added mid-way)
   is repaired, not refused: a lead above its limit may not grow, so the role ahead waits while the
   others catch up; liveness holds unchanged.
10. A role with more updated pods than its target (partition raised mid-rollout) counts as done and is
   left where it is: the planner only moves pods toward the revision it plans for.
11. Rollback needs no code of its own: plan it with `updated` counting the pods on the revision being
   rolled back to (old revision = new target). The same invariant then keeps the roles in step on the
   way back.

`minimum_steps` is a closed-form floor for benchmarks (no simulation), the larger of two lower bounds,
each valid for every admissible plan:
* per role, ceil(remaining / batch);
* per rule with a maxSkew, the skew bound. Let m be the smallest progress among the rule's roles (with a
  target). In one step every other role a can reach at most floor(target_a * (m + B)) / target_a, where B
  is the largest lead of a over the laggard the plan can ever use (its limit, or its lead at the start
  if larger: leads above their limit never grow), and the laggard itself at most m + batch / target.
  The new m is at most the smallest of these, maximised over which role may be the laggard; the bound
  g(m) is nondecreasing in m, so iterating it from the current m overestimates the real m after k steps
  and the number of iterations until it reaches 1 is a lower bound. For two roles with equal replicas,
  partition, batch and starting point the planner moves both by min(batch, floor(target * limit)) pods
  a step, exactly what g predicts, so the bound is tight there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from rbg_flows.api.intstr import parse_percent, resolve_int_or_percent
from rbg_flows.api.rbg import Coordination, RoleBasedGroupSpec, RoleSpec

IntOrPercent = int | str


def coordination_percent(value: IntOrPercent) -> int:
    """A coordination field as a whole percentage 0..100: "25%" -> 25 and (ext) an integer k -> k."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an int-or-percent")
    percent = value if isinstance(value, int) else parse_percent(value)
    if percent < 0:
        raise ValueError(f"{value!r} is negative")
    # The schema caps percent strings at 100% but not integers; more than everything is everything.
    return min(percent, 100)


def _scaled(percent: int, replicas: int, round_up: bool) -> int:
    # Through resolve_int_or_percent so percentages round exactly as the role fields do.
    return resolve_int_or_percent(f"{percent}%", replicas, round_up=round_up)


def _check_count(owner: str, field: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}: {field} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class RoleRollout:
    """One role taking part in the rollout, its role-level parameters already resolved to counts."""

    name: str
    replicas: int
    """N: the role's desired replicas."""
    updated: int = 0
    """Pods already on the revision being rolled out to (0..N)."""
    partition: int = 0
    """Ordinals below this keep the old revision (the role's own rollingUpdate.partition)."""
    max_unavailable: int = 1
    """The role's rollingUpdate.maxUnavailable as a count."""
    max_surge: int = 0
    """The role's rollingUpdate.maxSurge as a count (temporary extra pods)."""

    def __post_init__(self) -> None:
        owner = f"role {self.name!r}"
        _check_count(owner, "replicas", self.replicas)
        _check_count(owner, "updated", self.updated)
        _check_count(owner, "partition", self.partition)
        _check_count(owner, "max_unavailable", self.max_unavailable)
        _check_count(owner, "max_surge", self.max_surge)
        if self.updated > self.replicas:
            raise ValueError(f"{owner}: updated {self.updated} exceeds replicas {self.replicas}")


@dataclass(frozen=True)
class LockStepRule:
    """The rollingUpdate part of one `spec.coordination[]` rule (fields as the user wrote them)."""

    name: str
    roles: tuple[str, ...]
    max_skew: IntOrPercent | None = None
    """Largest allowed lead of one role's progress over another's; None: unbounded."""
    partition: IntOrPercent | None = None
    """Fraction of each role's replicas that keeps the old revision."""
    max_unavailable: IntOrPercent | None = None
    """Fraction of each role's replicas that may move in one step."""

    def __post_init__(self) -> None:
        if not self.roles:
            raise ValueError(f"rule {self.name!r} names no role")
        if len(set(self.roles)) != len(self.roles):
            raise ValueError(f"rule {self.name!r} names a role twice")
        for value in (self.max_skew, self.partition, self.max_unavailable):
            if value is not None:
                coordination_percent(value)  # refuse a malformed value here, not in the middle of a plan

    @property
    def skew(self) -> Fraction | None:
        """maxSkew as a fraction, or None when the rule does not bound skew."""
        return None if self.max_skew is None else Fraction(coordination_percent(self.max_skew), 100)


@dataclass(frozen=True)
class RolloutState:
    """Everything `plan_step` needs: the roles in the upgrade and the lock-step rules binding them."""

    roles: tuple[RoleRollout, ...]
    rules: tuple[LockStepRule, ...] = ()

    def __post_init__(self) -> None:
        names = [role.name for role in self.roles]
        if len(set(names)) != len(names):
            raise ValueError("role names must be unique")
        known = set(names)
        for rule in self.rules:
            unknown = [name for name in rule.roles if name not in known]
            if unknown:
                raise ValueError(f"rule {rule.name!r} names unknown role(s) {unknown}")

    def role(self, name: str) -> RoleRollout:
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(name)

    @property
    def updated(self) -> dict[str, int]:
        return {role.name: role.updated for role in self.roles}

    def with_updated(self, counts: Mapping[str, int]) -> RolloutState:
        """The same rollout with some roles' updated counts replaced (pods have finished a step)."""
        roles = tuple(
            RoleRollout(
                r.name, r.replicas, counts.get(r.name, r.updated), r.partition, r.max_unavailable, r.max_surge
            )
            for r in self.roles
        )
        return RolloutState(roles, self.rules)

    def apply(self, step: Step) -> RolloutState:
        """The state once every pod of `step` has finished."""
        return self.with_updated(step.after)


@dataclass(frozen=True)
class ResolvedRole:
    """A role with every rule folded in: the numbers the planner works with."""

    name: str
    replicas: int
    floor: int
    """Effective partition: the largest of the role's own and those of its rules."""
    updated: int
    batch: int
    """Most pods the role may move in one step (>= 1)."""

    @property
    def target(self) -> int:
        return self.replicas - self.floor

    @property
    def done(self) -> bool:
        return self.updated >= self.target

    @property
    def progress(self) -> Fraction:
        if self.target == 0:
            return Fraction(1)
        return Fraction(min(self.updated, self.target), self.target)

    @property
    def remaining(self) -> int:
        return max(0, self.target - self.updated)


@dataclass(frozen=True)
class Constraints:
    """The resolved roles and, for every ordered pair (ahead, behind) bound by a rule with a maxSkew,
    the largest lead of `ahead`'s progress over `behind`'s (decision 6)."""

    roles: Mapping[str, ResolvedRole]
    lead_limits: Mapping[tuple[str, str], Fraction]

    def limits_over(self, ahead: str) -> dict[str, Fraction]:
        """behind -> limit, for every role `ahead` must not outrun."""
        return {b: limit for (a, b), limit in self.lead_limits.items() if a == ahead}

    def violations(self, counts: Mapping[str, int]) -> list[tuple[str, str, Fraction, Fraction]]:
        """(ahead, behind, lead, limit) for each pair whose lead exceeds its limit at these counts."""
        progress = {name: _progress(role, counts[name]) for name, role in self.roles.items()}
        return [
            (a, b, progress[a] - progress[b], limit)
            for (a, b), limit in self.lead_limits.items()
            if progress[a] - progress[b] > limit
        ]


def _progress(role: ResolvedRole, updated: int) -> Fraction:
    if role.target == 0:
        return Fraction(1)
    return Fraction(min(updated, role.target), role.target)


def resolve(state: RolloutState) -> Constraints:
    """Fold the rules into the roles: effective floors, batches and pairwise lead limits."""
    floors = {role.name: role.partition for role in state.roles}
    batches = {role.name: role.max_unavailable + role.max_surge for role in state.roles}
    replicas = {role.name: role.replicas for role in state.roles}
    for rule in state.rules:
        for name in rule.roles:
            n = replicas[name]
            if rule.partition is not None:
                floors[name] = max(
                    floors[name], _scaled(coordination_percent(rule.partition), n, round_up=True)
                )
            if rule.max_unavailable is not None:
                cap = _scaled(coordination_percent(rule.max_unavailable), n, round_up=False)
                batches[name] = min(batches[name], cap)
    roles = {
        role.name: ResolvedRole(
            name=role.name,
            replicas=role.replicas,
            floor=min(floors[role.name], role.replicas),
            updated=role.updated,
            # At least one pod, or a rounded-down cap on a small role would freeze the rollout.
            batch=max(1, batches[role.name]),
        )
        for role in state.roles
    }

    pair_skew: dict[tuple[str, str], Fraction] = {}
    for rule in state.rules:
        skew = rule.skew
        if skew is None:
            continue
        members = [name for name in rule.roles if roles[name].target > 0]
        for a in members:
            for b in members:
                if a != b:
                    # A pair bound by several rules obeys the tightest.
                    pair_skew[(a, b)] = min(pair_skew.get((a, b), skew), skew)
    lead_limits = {
        (a, b): max(skew, Fraction(1, roles[a].target))  # single-pod exemption (decision 6)
        for (a, b), skew in pair_skew.items()
    }
    return Constraints(roles, lead_limits)


@dataclass(frozen=True)
class RoleMove:
    name: str
    before: int
    after: int

    @property
    def pods(self) -> int:
        return self.after - self.before


@dataclass(frozen=True)
class Step:
    """One planned step: every role's updated count before and after (roles in state order)."""

    moves: tuple[RoleMove, ...]

    @property
    def after(self) -> dict[str, int]:
        return {move.name: move.after for move in self.moves}

    @property
    def before(self) -> dict[str, int]:
        return {move.name: move.before for move in self.moves}

    @property
    def moved(self) -> tuple[str, ...]:
        return tuple(move.name for move in self.moves if move.pods > 0)

    @property
    def pods(self) -> int:
        return sum(move.pods for move in self.moves)


def is_done(state: RolloutState) -> bool:
    return all(role.done for role in resolve(state).roles.values())


def plan_step(state: RolloutState) -> Step:
    """The next step: every role moved as far as its batch, its target and the skew invariant allow.

    For role a the corner "a new, every other role old" is the binding one (module docstring, decision
    7), so a's new count is min(target, updated + batch, floor(target_a * (progress_b + budget_ab)))
    over the roles b it must not outrun, where budget_ab is its lead limit, or its current lead when a
    starting state is already past the limit (decision 9). No choice made for one role can invalidate
    another's, so this componentwise maximum is itself admissible.

    Liveness: let i be an unfinished role of least progress x_i. For each b it must not outrun, either b
    is unfinished and x_b >= x_i, or b is finished and x_b = 1 >= x_i + 1/target_i. Either way
    x_b + limit(i over b) >= x_i + 1/target_i, since the limit is at least 1/target_i; so i's bound is
    at least updated_i + 1, and i moves.
    """
    constraints = resolve(state)
    progress = {name: role.progress for name, role in constraints.roles.items()}
    moves: list[RoleMove] = []
    for role in constraints.roles.values():
        after = role.updated
        if not role.done:
            highest = min(role.target, role.updated + role.batch)
            for behind, limit in constraints.limits_over(role.name).items():
                budget = max(limit, progress[role.name] - progress[behind])
                highest = min(highest, math.floor(role.target * (progress[behind] + budget)))
            after = max(role.updated, highest)
        moves.append(RoleMove(role.name, role.updated, after))
    return Step(tuple(moves))


def plan_all(state: RolloutState) -> list[Step]:
    """Every step from `state` to the end of the rollout, assuming each step completes as planned."""
    steps: list[Step] = []
    # Each step moves at least one pod (liveness), so there can be no more steps than pods to move;
    # the guard turns a planner bug into an error instead of an endless workflow.
    guard = sum(role.remaining for role in resolve(state).roles.values())
    current = state
    while not is_done(current):
        step = plan_step(current)
        if step.pods == 0 or len(steps) >= guard:
            raise RuntimeError(f"rollout planner stalled at {current.updated}")
        steps.append(step)
        current = current.apply(step)
    return steps


def minimum_steps(state: RolloutState) -> int:
    """A lower bound on the steps any admissible plan needs from `state` (module docstring)."""
    constraints = resolve(state)
    roles = constraints.roles
    bound = max((math.ceil(r.remaining / r.batch) for r in roles.values() if not r.done), default=0)
    for rule in state.rules:
        if rule.skew is None:
            continue
        members = [name for name in rule.roles if roles[name].target > 0]
        bound = max(bound, _skew_bound(constraints, members))
    return bound


def _skew_bound(constraints: Constraints, members: list[str]) -> int:
    roles = constraints.roles
    progress = {name: roles[name].progress for name in members}
    laggards = [name for name in members if not roles[name].done]
    if not laggards:
        return 0
    # Largest lead of a over b any step of any admissible plan may use: leads above their limit never
    # grow (decision 9), so the starting lead bounds them for the whole plan.
    budget = {
        (a, b): max(constraints.lead_limits[(a, b)], progress[a] - progress[b])
        for a in members
        for b in members
        if a != b
    }

    def reachable(m: Fraction) -> Fraction:
        # Largest possible least progress after one step, if it is at most m before.
        best = Fraction(0)
        for b in laggards:
            highest = min(Fraction(1), m + Fraction(roles[b].batch, roles[b].target))
            for a in members:
                if a != b:
                    target = roles[a].target
                    highest = min(highest, Fraction(math.floor(target * (m + budget[(a, b)])), target))
            best = max(best, highest)
        return best

    m = min(progress.values())
    steps = 0
    # g(m) > m while m < 1 and every increment reaches a new lattice point of some role or adds a whole
    # batch, so this loop ends well within the guard.
    guard = 2 * sum(roles[name].target for name in members) + 2
    while m < 1:
        m = reachable(m)
        steps += 1
        if steps > guard:
            raise RuntimeError("skew bound did not converge")
    return steps


def rule_from_coordination(rule: Coordination) -> LockStepRule | None:
    """The lock-step rollout part of a `spec.coordination[]` rule, or None if it has none."""
    rolling = rule.strategy.rolling_update if rule.strategy is not None else None
    if rolling is None:
        return None
    return LockStepRule(
        name=rule.name,
        roles=tuple(rule.roles),
        max_skew=rolling.max_skew,
        partition=rolling.partition,
        max_unavailable=rolling.max_unavailable,
    )


def role_from_spec(spec: RoleSpec, updated: int) -> RoleRollout:
    """A role's rollout parameters resolved to counts the way Deployments and StatefulSets resolve them
    (partition and maxSurge round up, maxUnavailable rounds down)."""
    rolling = spec.rollout_strategy.rolling_update
    n = spec.replicas
    return RoleRollout(
        name=spec.name,
        replicas=n,
        # Status may still count pods of a role that was just scaled down.
        updated=min(updated, n),
        partition=resolve_int_or_percent(rolling.partition, n, round_up=True),
        max_unavailable=resolve_int_or_percent(rolling.max_unavailable, n, round_up=False),
        max_surge=resolve_int_or_percent(rolling.max_surge, n, round_up=True),
    )


def state_from_spec(
    spec: RoleBasedGroupSpec, updated: Mapping[str, int], roles: Iterable[str] | None = None
) -> RolloutState:
    """The rollout of `roles` (default: all) with their lock-step rules; rules naming a role outside
    `roles` are kept to the roles inside."""
    wanted = set(roles) if roles is not None else {role.name for role in spec.roles}
    members = tuple(
        role_from_spec(role, updated.get(role.name, 0)) for role in spec.roles if role.name in wanted
    )
    rules: list[LockStepRule] = []
    for coordination in spec.coordination:
        rule = rule_from_coordination(coordination)
        if rule is None:
            continue
        kept = tuple(name for name in rule.roles if name in wanted)
        if kept:
            rules.append(LockStepRule(rule.name, kept, rule.max_skew, rule.partition, rule.max_unavailable))
    return RolloutState(members, tuple(rules))
