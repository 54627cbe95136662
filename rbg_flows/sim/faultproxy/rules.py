"""Fault rules and what the proxy answers when one fires (pure, but for the random draw)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from rbg_flows.sim.faultproxy.classify import RULE_VERBS, RequestInfo

FaultAction = Literal["conflict", "throttle", "error", "hang", "gone"]
FAULT_ACTIONS: tuple[FaultAction, ...] = ("conflict", "throttle", "error", "hang", "gone")

_INJECTED_CAUSE = "fault injected by the rbg-flows API fault proxy"


# ---------------------------------------------------------------------------------------------
# Rules (pure, but for the random draw)


class FaultRule(BaseModel):
    """Inject `action` into a `fraction` of the requests that match verb, resource and namespace.

    `resource` is a plural resource (`pods`), a subresource (`pods/status`, `pods/*` for any
    subresource of pods, `*/status`), or `*` for everything. A rule only ever matches resource
    requests: discovery and health checks are never faulted, since clients treat their failure as
    a broken cluster rather than as a transient API error.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    verb: str = "*"
    resource: str = "*"
    namespace: str | None = None
    fraction: float = Field(gt=0.0, le=1.0)
    action: FaultAction
    retry_after_seconds: int = Field(default=1, ge=0)
    hang_seconds: float = Field(default=30.0, ge=0.0)
    count: int | None = Field(default=None, ge=1)

    @field_validator("verb")
    @classmethod
    def _known_verb(cls, v: str) -> str:
        if v not in RULE_VERBS:
            raise ValueError(f"verb must be one of {sorted(RULE_VERBS)}, not {v!r}")
        return v

    @field_validator("resource")
    @classmethod
    def _resource_shape(cls, v: str) -> str:
        if not v or v.count("/") > 1 or any(not p for p in v.split("/")):
            raise ValueError(f"resource must look like 'pods', 'pods/status' or '*', not {v!r}")
        return v

    def matches(self, info: RequestInfo) -> bool:
        if not info.is_resource_request:
            return False
        if self.verb != "*" and self.verb != info.verb:
            return False
        if self.namespace is not None and self.namespace != info.namespace:
            return False
        if self.resource == "*":
            return True
        res, sep, sub = self.resource.partition("/")
        if res not in ("*", info.resource):
            return False
        if not sep:
            return info.subresource is None
        if sub == "*":
            return info.subresource is not None
        return sub == info.subresource


_RULES_ADAPTER = TypeAdapter(list[FaultRule])


class FaultInjector:
    """The rule book: first matching rule whose draw succeeds wins; `count` caps its injections."""

    def __init__(self, rules: Iterable[FaultRule] = (), rng: random.Random | None = None) -> None:
        # One seedable source for every draw, so a seeded test sees the same faults every run.
        self.rng = rng if rng is not None else random.Random()
        self._rules: list[FaultRule] = []
        self._fired: list[int] = []
        self.injected: dict[FaultAction, int] = dict.fromkeys(FAULT_ACTIONS, 0)
        self.set_rules(rules)

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def set_rules(self, rules: Iterable[FaultRule]) -> None:
        self._rules = list(rules)
        self._fired = [0] * len(self._rules)

    def clear(self) -> None:
        self.set_rules(())

    def fired(self) -> list[int]:
        """Injections so far per rule (same order as `rules`)."""
        return list(self._fired)

    def choose(self, info: RequestInfo) -> FaultRule | None:
        for i, rule in enumerate(self._rules):
            if rule.count is not None and self._fired[i] >= rule.count:
                continue
            if not rule.matches(info):
                continue
            # Draw only for matching rules, so adding a rule for other resources does not shift
            # the random sequence the seeded rules see.
            if self.rng.random() < rule.fraction:
                self._fired[i] += 1
                self.injected[rule.action] += 1
                return rule
        return None


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A `metav1.Status` failure, shaped as the API server sends it (client-go decodes `reason`)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details:
        body["details"] = dict(details)
    body["code"] = code
    return body


def fault_status(rule: FaultRule, info: RequestInfo) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(HTTP status, Status body, extra headers) for a non-hang fault."""
    qualified = f"{info.resource}.{info.group}" if info.group else info.resource
    if rule.action == "conflict":
        name = info.name or ""
        msg = (
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
        details = {"name": name, "group": info.group, "kind": info.resource}
        return 409, status_body(409, "Conflict", msg, {k: v for k, v in details.items() if v}), {}
    if rule.action == "throttle":
        # client-go retries a 429 by itself, honouring Retry-After, as it does for the API
        # server's max-in-flight limit: this is the message that limit sends.
        body = status_body(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            {"retryAfterSeconds": rule.retry_after_seconds},
        )
        return 429, body, {"Retry-After": str(rule.retry_after_seconds)}
    if rule.action == "error":
        body = status_body(
            500,
            "InternalError",
            f"Internal error occurred: {_INJECTED_CAUSE}",
            {"causes": [{"message": _INJECTED_CAUSE}]},
        )
        return 500, body, {}
    if rule.action == "gone":
        # What a watch or a paginated list gets once its resourceVersion has left the API server's
        # window (compacted): the client must re-list.
        msg = "too old resource version: 1 (0); " + _INJECTED_CAUSE
        return 410, status_body(410, "Expired", msg), {}
    raise ValueError(f"{rule.action!r} has no Status response")
