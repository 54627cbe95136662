"""Coordinated (lock-step) rollouts: a pure step planner for rolling several roles in step.

See `rbg_flows.rollout.planner` for the model and the decisions behind it.
"""

from rbg_flows.rollout.planner import (
    Constraints,
    LockStepRule,
    ResolvedRole,
    RoleMove,
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

__all__ = [
    "Constraints",
    "LockStepRule",
    "ResolvedRole",
    "RoleMove",
    "RoleRollout",
    "RolloutState",
    "Step",
    "coordination_percent",
    "is_done",
    "minimum_steps",
    "plan_all",
    "plan_step",
    "resolve",
    "role_from_spec",
    "rule_from_coordination",
    "state_from_spec",
]
