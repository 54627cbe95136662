"""What the CRD schema cannot say about a RoleBasedGroup: cross-field and cross-role rules.

The orchestrator runs these before creating anything and refuses the spec with `InvalidSpec=True`,
naming every field path at once (users fix a spec in one round, not one error per apply).
Also here: the dependency order the deploy workflow follows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from rbg_flows.api.common import API_VERSION_V1ALPHA2, DNS1123_LABEL_MAX_LENGTH, is_dns1123_label
from rbg_flows.api.conversion import ConversionError, to_internal
from rbg_flows.api.intstr import parse_percent, resolve_int_or_percent
from rbg_flows.api.limits import MAX_SET_REPLICAS, check_limits
from rbg_flows.api.rbg import (
    LEADERWORKERSET,
    SERVED_WORKLOADS,
    STATEFULSET,
    RoleBasedGroup,
    RoleBasedGroupSpec,
    RoleSpec,
)
from rbg_flows.api.rbgset import RoleBasedGroupSet, child_name


class FieldError(BaseModel):
    """One problem of a spec, located like Kubernetes does: `spec.roles[1].dependencies[0]`."""

    model_config = ConfigDict(frozen=True)

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def field_path(*parts: str | int) -> str:
    """field_path("spec", "roles", 1, "name") == "spec.roles[1].name"."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def format_errors(errors: Iterable[FieldError]) -> str:
    """One line for a condition message or an Event."""
    return "; ".join(str(error) for error in errors)


def errors_from_validation_error(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """pydantic's errors as FieldErrors, for objects that do not even parse (written before the CRD
    was installed, or by a client that skipped validation)."""
    errors = []
    for error in exc.errors():
        parts: list[str | int] = [prefix] if prefix else []
        parts.extend(part for part in error["loc"] if isinstance(part, str | int))
        errors.append(FieldError(path=field_path(*parts) or "<root>", message=error["msg"]))
    return errors


# --- RoleBasedGroup ------------------------------------------------------------------------


def validate_rbg(rbg: RoleBasedGroup) -> list[FieldError]:
    """Every problem of the group's spec; empty when it can be deployed."""
    return _check_group_name(rbg) + validate_rbg_spec(rbg.spec, rbg.metadata.name)


def _check_group_name(rbg: RoleBasedGroup) -> list[FieldError]:
    # The API server admits any DNS subdomain for a custom object, but the name becomes a label value,
    # a prefix of pod hostnames (no dots) and of Service names (DNS-1035: a letter first).
    name = rbg.metadata.name
    if not name:
        return []
    if not is_dns1123_label(name):
        return [
            FieldError(
                path="metadata.name",
                message=f"{name!r} must be a DNS-1123 label (at most {DNS1123_LABEL_MAX_LENGTH} lower-case "
                "alphanumerics or '-', no dots): it prefixes pod names and is a label value",
            )
        ]
    with_service = [r.name for r in rbg.spec.roles if r.workload.key in (STATEFULSET, LEADERWORKERSET)]
    if with_service and not name[0].isalpha():
        return [
            FieldError(
                path="metadata.name",
                message=f"{name!r} must start with a letter: the headless Service {name}-{with_service[0]} "
                "must be a DNS-1035 label",
            )
        ]
    return []


def validate_rbgs(rbgs: RoleBasedGroupSet) -> list[FieldError]:
    """Problems of a set: its size, and its template checked as the longest child name it will create."""
    name = rbgs.metadata.name
    errors = []
    if rbgs.spec.replicas > MAX_SET_REPLICAS:
        errors.append(
            FieldError(
                path="spec.replicas",
                message=f"{rbgs.spec.replicas} RoleBasedGroups is more than the {MAX_SET_REPLICAS} a set "
                "may hold",
            )
        )
    longest = child_name(name, max(min(rbgs.spec.replicas, MAX_SET_REPLICAS) - 1, 0)) if name else None
    if longest is not None and not is_dns1123_label(longest):
        errors.append(
            FieldError(
                path="metadata.name",
                message=f"the set's RoleBasedGroup {longest!r} must be a DNS-1123 label (at most "
                f"{DNS1123_LABEL_MAX_LENGTH} lower-case alphanumerics or '-', no dots)",
            )
        )
    return errors + validate_rbg_spec(rbgs.spec.template, longest, path="spec.template")


M = TypeVar("M", RoleBasedGroup, RoleBasedGroupSet)


def _parse(
    obj: Mapping[str, Any], model: type[M], validate: Callable[[M], list[FieldError]]
) -> tuple[M | None, list[FieldError]]:
    if obj.get("apiVersion") == API_VERSION_V1ALPHA2:
        try:
            obj = to_internal(obj)
        except ConversionError as exc:
            return None, [FieldError(path=exc.path, message=exc.message)]
    try:
        parsed = model.model_validate(obj)
    except ValidationError as exc:
        return None, errors_from_validation_error(exc)
    return parsed, validate(parsed)


def parse_rbg(obj: Mapping[str, Any]) -> tuple[RoleBasedGroup | None, list[FieldError]]:
    """Parse and validate in one step: (model, []) when deployable, (model or None, errors) otherwise.
    A v1alpha2 object is converted to the v1alpha1 form first."""
    return _parse(obj, RoleBasedGroup, validate_rbg)


def parse_rbgs(obj: Mapping[str, Any]) -> tuple[RoleBasedGroupSet | None, list[FieldError]]:
    """`parse_rbg` for a RoleBasedGroupSet."""
    return _parse(obj, RoleBasedGroupSet, validate_rbgs)


def validate_rbg_spec(spec: RoleBasedGroupSpec, rbg_name: str | None, path: str = "spec") -> list[FieldError]:
    """`rbg_name` is None when not known yet (generateName): name lengths are then not checked."""
    errors: list[FieldError] = []
    role_names = {role.name for role in spec.roles}
    template_names = {template.name for template in spec.role_templates}

    seen_templates: set[str] = set()
    for i, template in enumerate(spec.role_templates):
        if template.name in seen_templates:
            errors.append(
                _err(path, "roleTemplates", i, "name", msg=f"duplicate role template {template.name!r}")
            )
        seen_templates.add(template.name)

    seen_roles: set[str] = set()
    for i, role in enumerate(spec.roles):
        errors.extend(_check_role(role, (path, "roles", i), rbg_name, role_names, template_names, seen_roles))
        seen_roles.add(role.name)

    errors.extend(_err(path, *e.path, msg=e.message) for e in check_limits(rbg_name, spec.roles))
    errors.extend(_check_cycles(spec.roles, path))
    errors.extend(_check_coordination(spec, path, role_names))
    errors.extend(_check_group_fields(spec, path, role_names))
    return errors


def _err(*parts: str | int, msg: str) -> FieldError:
    return FieldError(path=field_path(*parts), message=msg)


# Workloads carry the label key `rolebasedgroup.workloads.x-k8s.io/role-revision-hash-<role>`, whose name
# part (after the prefix) is limited to 63 characters.
REVISION_LABEL_PREFIX = "rolebasedgroup.workloads.x-k8s.io/role-revision-hash-"
ROLE_NAME_MAX_LENGTH = 63 - len("role-revision-hash-")


def _check_role(
    role: RoleSpec,
    at: tuple[str, str, int],
    rbg_name: str | None,
    role_names: set[str],
    template_names: set[str],
    seen_roles: set[str],
) -> list[FieldError]:
    errors: list[FieldError] = []
    if not is_dns1123_label(role.name):
        errors.append(
            _err(*at, "name", msg=f"{role.name!r} is not a DNS-1123 label (lower-case alphanumerics and '-')")
        )
    if len(role.name) > ROLE_NAME_MAX_LENGTH:
        errors.append(
            _err(
                *at,
                "name",
                msg=f"{role.name!r} is {len(role.name)} characters, more than {ROLE_NAME_MAX_LENGTH}: the "
                f"label key {REVISION_LABEL_PREFIX}<role> must fit in 63 characters",
            )
        )
    if role.name in seen_roles:
        errors.append(_err(*at, "name", msg=f"duplicate role name {role.name!r}"))
    if role.workload.key not in SERVED_WORKLOADS:
        errors.append(
            _err(
                *at,
                "workload",
                msg=f"{role.workload.key} is not served; use one of {', '.join(SERVED_WORKLOADS)}",
            )
        )

    if role.template is not None and role.template_ref is not None:
        errors.append(_err(*at, "templateRef", msg="template and templateRef are mutually exclusive"))
    elif role.template is None and role.template_ref is None:
        errors.append(_err(*at, "template", msg="one of template or templateRef is required"))
    if role.template_ref is not None and role.template_ref.name not in template_names:
        errors.append(
            _err(
                *at,
                "templateRef",
                "name",
                msg=f"no role template named {role.template_ref.name!r} in roleTemplates",
            )
        )
    if role.template_patch is not None and role.template_ref is None:
        errors.append(_err(*at, "templatePatch", msg="templatePatch needs templateRef"))

    for j, dependency in enumerate(role.dependencies):
        if dependency == role.name:
            errors.append(_err(*at, "dependencies", j, msg=f"role {role.name!r} depends on itself"))
        elif dependency not in role_names:
            errors.append(_err(*at, "dependencies", j, msg=f"unknown role {dependency!r}"))

    errors.extend(_check_rolling_update(role, (*at, "rolloutStrategy", "rollingUpdate")))

    config = role.restart_policy_config
    if config is not None and config.base_delay_seconds > config.max_delay_seconds:
        errors.append(
            _err(
                *at, "restartPolicyConfig", "baseDelaySeconds", msg="must not be greater than maxDelaySeconds"
            )
        )

    # Discovery keys ports by normalised name; two names that normalise alike would overwrite each other.
    seen_ports: dict[str, str] = {}
    for j, port in enumerate(role.service_ports):
        if port.name is None:
            continue
        key = port.name.lower().replace("-", "_")
        if key in seen_ports:
            errors.append(
                _err(
                    *at,
                    "servicePorts",
                    j,
                    "name",
                    msg=f"{port.name!r} clashes with {seen_ports[key]!r} ({key})",
                )
            )
        seen_ports.setdefault(key, port.name)
    return errors


def _check_rolling_update(role: RoleSpec, at: tuple[str | int, ...]) -> list[FieldError]:
    update = role.rollout_strategy.rolling_update
    replicas = role.replicas
    errors: list[FieldError] = []
    resolved: dict[str, int] = {}
    for key, value, round_up in (
        ("maxUnavailable", update.max_unavailable, False),
        ("maxSurge", update.max_surge, True),
        ("partition", update.partition, True),
    ):
        try:
            resolved[key] = resolve_int_or_percent(value, replicas, round_up)
        except ValueError as exc:
            errors.append(_err(*at, key, msg=str(exc)))
    if errors:
        return errors

    if isinstance(update.max_unavailable, str) and parse_percent(update.max_unavailable) > 100:
        errors.append(_err(*at, "maxUnavailable", msg="must not be greater than 100%"))
    # With no replicas every percentage resolves to 0; only literal zeros are a mistake then.
    unavailable = resolved["maxUnavailable"] if replicas else _literal(update.max_unavailable)
    surge = resolved["maxSurge"] if replicas else _literal(update.max_surge)
    if unavailable == 0 and surge == 0:
        errors.append(
            _err(
                *at,
                "maxUnavailable",
                msg=f"maxUnavailable ({update.max_unavailable!r}) and maxSurge ({update.max_surge!r}) "
                f"are both 0 for {replicas} replicas: the update could never make progress",
            )
        )
    if replicas > 0 and resolved["partition"] >= replicas:
        errors.append(
            _err(
                *at,
                "partition",
                msg=f"partition {update.partition!r} ({resolved['partition']}) "
                f"must be less than replicas ({replicas})",
            )
        )
    return errors


def _literal(value: int | str) -> int:
    return value if isinstance(value, int) else parse_percent(value)


def _check_coordination(spec: RoleBasedGroupSpec, path: str, role_names: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, rule in enumerate(spec.coordination):
        if rule.name in seen:
            errors.append(_err(path, "coordination", i, "name", msg=f"duplicate coordination {rule.name!r}"))
        seen.add(rule.name)
        in_rule: set[str] = set()
        for j, role in enumerate(rule.roles):
            if role not in role_names:
                errors.append(_err(path, "coordination", i, "roles", j, msg=f"unknown role {role!r}"))
            elif role in in_rule:
                errors.append(_err(path, "coordination", i, "roles", j, msg=f"role {role!r} listed twice"))
            in_rule.add(role)
    return errors


def _check_group_fields(spec: RoleBasedGroupSpec, path: str, role_names: set[str]) -> list[FieldError]:
    errors: list[FieldError] = []
    policy = spec.pod_group_policy
    if policy is not None and (policy.kube_scheduling is None) == (policy.volcano_scheduling is None):
        errors.append(
            _err(path, "podGroupPolicy", msg="exactly one of kubeScheduling or volcanoScheduling is required")
        )

    seen: set[str] = set()
    for i, role in enumerate(spec.rollout_order):
        if role not in role_names:
            errors.append(_err(path, "rolloutOrder", i, msg=f"unknown role {role!r}"))
        elif role in seen:
            errors.append(_err(path, "rolloutOrder", i, msg=f"role {role!r} listed twice"))
        seen.add(role)

    if spec.placement is not None:
        for i, pair in enumerate(spec.placement.pairs):
            for j, role in enumerate(pair):
                if role not in role_names:
                    errors.append(_err(path, "placement", "pairs", i, j, msg=f"unknown role {role!r}"))
    return errors


# --- dependencies --------------------------------------------------------------------------


def _check_cycles(roles: Sequence[RoleSpec], path: str) -> list[FieldError]:
    index = {role.name: i for i, role in enumerate(roles)}
    errors = []
    for cycle in dependency_cycles(roles):
        start = roles[index[cycle[0]]]
        j = start.dependencies.index(cycle[1])
        errors.append(
            _err(
                path,
                "roles",
                index[cycle[0]],
                "dependencies",
                j,
                msg="dependency cycle: " + " -> ".join(cycle),
            )
        )
    return errors


def _graph(roles: Sequence[RoleSpec]) -> dict[str, list[str]]:
    """role -> known dependencies other than itself, first definition of a name winning."""
    names = {role.name for role in roles}
    graph: dict[str, list[str]] = {}
    for role in roles:
        if role.name not in graph:
            graph[role.name] = [d for d in dict.fromkeys(role.dependencies) if d in names and d != role.name]
    return graph


def dependency_cycles(roles: Sequence[RoleSpec]) -> list[list[str]]:
    """Each cycle of two or more roles once, as a closed walk from its earliest role in spec order:
    ["a", "b", "a"] means a depends on b, which depends on a. Self-dependencies are not reported
    here (validate_rbg names them on their own)."""
    graph = _graph(roles)
    order = {name: i for i, name in enumerate(graph)}
    cycles = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        start = min(component, key=order.__getitem__)
        cycles.append(_walk_back(graph, start, set(component)))
    cycles.sort(key=lambda cycle: order[cycle[0]])
    return cycles


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    # Tarjan's algorithm; role counts are small, so recursion depth is not a concern.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return components


def _walk_back(graph: Mapping[str, Sequence[str]], start: str, members: set[str]) -> list[str]:
    """A shortest closed walk start -> ... -> start inside one strongly connected component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in graph[node]:
                if nxt == start:
                    walk = [node]
                    while walk[-1] != start:
                        walk.append(previous[walk[-1]])
                    return [*reversed(walk), start]
                if nxt in members and nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError("a strongly connected component always closes")


def dependency_levels(roles: Sequence[RoleSpec]) -> list[list[str]]:
    """Roles grouped by deployment wave: level 0 has no dependencies, level n depends only on lower
    levels. Within a level, roles keep their order in the spec.

    Raises ValueError for an unknown dependency or a cycle (validate_rbg reports those properly).
    """
    known = {role.name for role in roles}
    pending: dict[str, set[str]] = {}
    for role in roles:
        unknown = [d for d in role.dependencies if d not in known]
        if unknown:
            raise ValueError(f"role {role.name!r} depends on unknown role(s) {', '.join(map(repr, unknown))}")
        pending[role.name] = set(role.dependencies)

    levels: list[list[str]] = []
    placed: set[str] = set()
    while len(placed) < len(pending):
        level = [name for name in pending if name not in placed and pending[name] <= placed]
        if not level:
            stuck = [role for role in roles if role.name not in placed]
            cycles = dependency_cycles(stuck)
            if cycles:
                raise ValueError("dependency cycle: " + " -> ".join(cycles[0]))
            looped = next(role.name for role in stuck if role.name in role.dependencies)
            raise ValueError(f"dependency cycle: {looped} -> {looped}")
        levels.append(level)
        placed.update(level)
    return levels
