"""Spec validation beyond the schema, dependency order and int-or-percent arithmetic."""

from __future__ import annotations

from typing import Any

import pytest

from rbg_flows.api import (
    FieldError,
    RoleBasedGroup,
    RoleBasedGroupSet,
    RoleSpec,
    dependency_cycles,
    dependency_levels,
    field_path,
    format_errors,
    parse_percent,
    parse_rbg,
    resolve_int_or_percent,
    validate_rbg,
    validate_rbgs,
)

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment"}
TEMPLATE: dict[str, Any] = {"spec": {"containers": [{"name": "main", "image": "engine"}]}}


def role(name: str, *dependencies: str, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "template": TEMPLATE, **fields}
    if dependencies:
        spec["dependencies"] = list(dependencies)
    return spec


def rolling(**update: Any) -> dict[str, Any]:
    return {"rollingUpdate": update}


def rbg(*roles: dict[str, Any], name: str = "pd", **spec: Any) -> RoleBasedGroup:
    return RoleBasedGroup.model_validate({"metadata": {"name": name}, "spec": {"roles": list(roles), **spec}})


def pd() -> RoleBasedGroup:
    return rbg(
        role("router", "prefill", "decode", workload={"kind": "Deployment"}),
        role("prefill", replicas=4, rolloutStrategy=rolling(maxUnavailable="25%", maxSurge=0, partition=2)),
        role("decode", replicas=2),
        coordination=[{"name": "pd", "roles": ["prefill", "decode"]}],
        placement={"pairs": [["prefill", "decode"]]},
        rolloutOrder=["decode", "prefill", "router"],
        podGroupPolicy={"volcanoScheduling": {"queue": "gpu"}},
    )


def paths(errors: list[FieldError]) -> list[str]:
    return [error.path for error in errors]


def test_valid_group_has_no_errors() -> None:
    assert validate_rbg(pd()) == []


CASES: list[tuple[str, RoleBasedGroup, str, str]] = [
    (
        "duplicate role name",
        rbg(role("a"), role("b"), role("a")),
        "spec.roles[2].name",
        "duplicate role name 'a'",
    ),
    (
        "unknown dependency",
        rbg(role("a", "b", "ghost"), role("b")),
        "spec.roles[0].dependencies[1]",
        "unknown role 'ghost'",
    ),
    (
        "dependency on itself",
        rbg(role("a", "a")),
        "spec.roles[0].dependencies[0]",
        "depends on itself",
    ),
    (
        "dependency cycle",
        rbg(role("x"), role("a", "x", "b"), role("b", "c"), role("c", "a")),
        "spec.roles[1].dependencies[1]",
        "dependency cycle: a -> b -> c -> a",
    ),
    (
        "workload name too long",
        rbg(role("r" * 30), name="g" * 33),
        "spec.roles[0].name",
        "64 characters, more than 63",
    ),
    (
        "template and templateRef",
        rbg(role("a", templateRef={"name": "t"}), roleTemplates=[{"name": "t", "template": TEMPLATE}]),
        "spec.roles[0].templateRef",
        "mutually exclusive",
    ),
    (
        "neither template nor templateRef",
        rbg({"name": "a"}),
        "spec.roles[0].template",
        "one of template or templateRef is required",
    ),
    (
        "unknown templateRef",
        rbg({"name": "a", "templateRef": {"name": "missing"}}, roleTemplates=[{"name": "t", "template": {}}]),
        "spec.roles[0].templateRef.name",
        "no role template named 'missing'",
    ),
    (
        "templatePatch without templateRef",
        rbg(role("a", templatePatch={})),
        "spec.roles[0].templatePatch",
        "needs templateRef",
    ),
    (
        "duplicate role template",
        rbg(role("a"), roleTemplates=[{"name": "t", "template": {}}, {"name": "t", "template": {}}]),
        "spec.roleTemplates[1].name",
        "duplicate role template 't'",
    ),
    (
        "maxSurge and maxUnavailable both 0",
        rbg(role("a", replicas=3, rolloutStrategy=rolling(maxUnavailable=0, maxSurge=0))),
        "spec.roles[0].rolloutStrategy.rollingUpdate.maxUnavailable",
        "both 0",
    ),
    (
        "maxUnavailable percentage rounds down to 0",
        rbg(role("a", replicas=3, rolloutStrategy=rolling(maxUnavailable="25%"))),
        "spec.roles[0].rolloutStrategy.rollingUpdate.maxUnavailable",
        "both 0 for 3 replicas",
    ),
    (
        "literal zeros with no replicas",
        rbg(role("a", replicas=0, rolloutStrategy=rolling(maxUnavailable="0%", maxSurge=0))),
        "spec.roles[0].rolloutStrategy.rollingUpdate.maxUnavailable",
        "both 0",
    ),
    (
        "maxUnavailable above 100%",
        rbg(role("a", replicas=3, rolloutStrategy=rolling(maxUnavailable="150%"))),
        "spec.roles[0].rolloutStrategy.rollingUpdate.maxUnavailable",
        "greater than 100%",
    ),
    (
        "partition equal to replicas",
        rbg(role("a", replicas=3, rolloutStrategy=rolling(partition=3))),
        "spec.roles[0].rolloutStrategy.rollingUpdate.partition",
        "must be less than replicas (3)",
    ),
    (
        "partition percentage rounds up to replicas",
        rbg(role("a", replicas=3, rolloutStrategy=rolling(partition="70%"))),
        "spec.roles[0].rolloutStrategy.rollingUpdate.partition",
        "'70%' (3) must be less than replicas (3)",
    ),
    (
        "coordination names an unknown role",
        rbg(role("a"), coordination=[{"name": "c", "roles": ["a", "ghost"]}]),
        "spec.coordination[0].roles[1]",
        "unknown role 'ghost'",
    ),
    (
        "coordination lists a role twice",
        rbg(role("a"), coordination=[{"name": "c", "roles": ["a", "a"]}]),
        "spec.coordination[0].roles[1]",
        "listed twice",
    ),
    (
        "duplicate coordination",
        rbg(role("a"), coordination=[{"name": "c", "roles": ["a"]}, {"name": "c", "roles": ["a"]}]),
        "spec.coordination[1].name",
        "duplicate coordination 'c'",
    ),
    (
        "workload kind not served",
        rbg(role("a", workload={"apiVersion": "workloads.x-k8s.io/v1alpha1", "kind": "InstanceSet"})),
        "spec.roles[0].workload",
        "workloads.x-k8s.io/v1alpha1/InstanceSet is not served",
    ),
    (
        "workload apiVersion not served",
        rbg(role("a", workload={"apiVersion": "apps/v1beta1"})),
        "spec.roles[0].workload",
        "apps/v1beta1/StatefulSet is not served",
    ),
    (
        "placement pair names an unknown role",
        rbg(role("a"), placement={"pairs": [["a", "ghost"]]}),
        "spec.placement.pairs[0][1]",
        "unknown role 'ghost'",
    ),
    (
        "rolloutOrder names an unknown role",
        rbg(role("a"), rolloutOrder=["a", "ghost"]),
        "spec.rolloutOrder[1]",
        "unknown role 'ghost'",
    ),
    (
        "podGroupPolicy with two schedulers",
        rbg(role("a"), podGroupPolicy={"kubeScheduling": {}, "volcanoScheduling": {}}),
        "spec.podGroupPolicy",
        "exactly one of",
    ),
    (
        "podGroupPolicy with no scheduler",
        rbg(role("a"), podGroupPolicy={}),
        "spec.podGroupPolicy",
        "exactly one of",
    ),
    (
        "backoff base above its maximum",
        rbg(role("a", restartPolicyConfig={"baseDelaySeconds": 900})),
        "spec.roles[0].restartPolicyConfig.baseDelaySeconds",
        "maxDelaySeconds",
    ),
    (
        "service ports whose discovery keys clash",
        rbg(role("a", servicePorts=[{"name": "grpc-port", "port": 1}, {"name": "grpc_port", "port": 2}])),
        "spec.roles[0].servicePorts[1].name",
        "clashes with 'grpc-port' (grpc_port)",
    ),
]


@pytest.mark.parametrize(
    ("group", "path", "message"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_each_rule_reports_exactly_its_path(group: RoleBasedGroup, path: str, message: str) -> None:
    errors = validate_rbg(group)
    assert paths(errors) == [path], format_errors(errors)
    assert message in errors[0].message


def test_role_name_that_is_not_a_dns_label() -> None:
    # The schema refuses this at admission; objects built in code skip that, so validation checks again.
    group = pd()
    bad = group.spec.roles[1].model_copy(update={"name": "Prefill_0"})
    group.spec.roles[1] = bad
    group.spec.roles[0].dependencies = ["Prefill_0", "decode"]
    group.spec.coordination[0].roles = ["Prefill_0", "decode"]
    group.spec.placement = None
    group.spec.rollout_order = []
    errors = validate_rbg(group)
    assert paths(errors) == ["spec.roles[1].name"]
    assert "not a DNS-1123 label" in errors[0].message


@pytest.mark.parametrize(
    "update",
    [
        {"maxUnavailable": 0, "maxSurge": "25%"},  # 25% of 3 rounds up to 1
        {"maxUnavailable": "34%", "maxSurge": 0},  # 34% of 3 rounds down to 1
        {"maxUnavailable": 0, "maxSurge": 1, "partition": 2},
        {"partition": "66%"},  # rounds up to 2 < 3
    ],
)
def test_rolling_updates_that_can_progress(update: dict[str, Any]) -> None:
    assert validate_rbg(rbg(role("a", replicas=3, rolloutStrategy=rolling(**update)))) == []


def test_no_replicas_is_not_a_partition_or_percentage_error() -> None:
    group = rbg(role("a", replicas=0, rolloutStrategy=rolling(maxUnavailable="25%", partition=5)))
    assert validate_rbg(group) == []


def test_all_errors_are_reported_at_once() -> None:
    group = rbg(
        role("a", "ghost"),
        {"name": "b"},
        role("a"),
        coordination=[{"name": "c", "roles": ["nobody"]}],
    )
    assert paths(validate_rbg(group)) == [
        "spec.roles[0].dependencies[0]",
        "spec.roles[1].template",
        "spec.roles[2].name",
        "spec.coordination[0].roles[0]",
    ]


def test_two_cycles_are_named_separately() -> None:
    group = rbg(role("a", "b"), role("b", "a"), role("c", "d"), role("d", "c"), role("e", "a"))
    errors = validate_rbg(group)
    assert [(e.path, e.message) for e in errors] == [
        ("spec.roles[0].dependencies[0]", "dependency cycle: a -> b -> a"),
        ("spec.roles[2].dependencies[0]", "dependency cycle: c -> d -> c"),
    ]


def test_unknown_name_skips_the_length_check() -> None:
    group = RoleBasedGroup.model_validate(
        {"metadata": {"generateName": "x-"}, "spec": {"roles": [role("r" * 44)]}}
    )
    assert validate_rbg(group) == []


def test_role_name_must_leave_room_for_its_revision_label() -> None:
    group = RoleBasedGroup.model_validate({"metadata": {"name": "g"}, "spec": {"roles": [role("r" * 45)]}})
    errors = validate_rbg(group)
    assert [e.path for e in errors] == ["spec.roles[0].name"]
    assert "44" in errors[0].message and "role-revision-hash-" in errors[0].message


def test_rbgs_checks_the_longest_child_name() -> None:
    def rbgs(replicas: int) -> RoleBasedGroupSet:
        return RoleBasedGroupSet.model_validate(
            {
                "metadata": {"name": "s" * 50},
                # A Deployment: its workload name is the only derived name that binds (StatefulSet
                # names are held to 52 by their controller-revision-hash label, see test_api_limits).
                "spec": {"replicas": replicas, "template": {"roles": [role("r" * 10, workload=DEPLOYMENT)]}},
            }
        )

    assert validate_rbgs(rbgs(10)) == []  # s*50-9-r*10 is 63
    errors = validate_rbgs(rbgs(11))  # s*50-10-r*10 is 64
    assert paths(errors) == ["spec.template.roles[0].name"]


def test_parse_rbg() -> None:
    group, errors = parse_rbg(pd().model_dump(exclude_none=True))
    assert group is not None and errors == []

    group, errors = parse_rbg({"metadata": {"name": "pd"}, "spec": {"roles": [role("a", "b")]}})
    assert group is not None and paths(errors) == ["spec.roles[0].dependencies[0]"]

    group, errors = parse_rbg({"spec": {"roles": [{"name": "a", "replicas": "many"}]}})
    assert group is None and paths(errors) == ["spec.roles[0].replicas"]


def test_field_error_formatting() -> None:
    assert field_path("spec", "roles", 1, "dependencies", 0) == "spec.roles[1].dependencies[0]"
    assert field_path("spec", "placement", "pairs", 0, 1) == "spec.placement.pairs[0][1]"
    errors = [FieldError(path="spec.roles[0].name", message="bad"), FieldError(path="spec", message="worse")]
    assert format_errors(errors) == "spec.roles[0].name: bad; spec: worse"


# --- dependency levels ---------------------------------------------------------------------


def roles(*specs: dict[str, Any]) -> list[RoleSpec]:
    return [RoleSpec.model_validate(spec) for spec in specs]


def test_dependency_levels_pd() -> None:
    assert dependency_levels(pd().spec.roles) == [["prefill", "decode"], ["router"]]


def test_dependency_levels_keep_spec_order_within_a_level() -> None:
    graph = roles(
        role("gateway", "router"),
        role("router", "prefill", "decode"),
        role("decode", "cache"),
        role("prefill", "cache"),
        role("cache"),
        role("metrics"),
    )
    assert dependency_levels(graph) == [["cache", "metrics"], ["decode", "prefill"], ["router"], ["gateway"]]


def test_dependency_levels_of_independent_roles() -> None:
    assert dependency_levels(roles(role("b"), role("a"))) == [["b", "a"]]
    assert dependency_levels([]) == []


def test_dependency_levels_refuse_cycles_and_unknown_roles() -> None:
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> a"):
        dependency_levels(roles(role("root"), role("a", "b", "root"), role("b", "a")))
    with pytest.raises(ValueError, match="dependency cycle: a -> a"):
        dependency_levels(roles(role("a", "a")))
    with pytest.raises(ValueError, match="unknown role"):
        dependency_levels(roles(role("a", "ghost")))


def test_dependency_cycles_start_at_the_earliest_role() -> None:
    graph = roles(role("z"), role("c", "a"), role("a", "b"), role("b", "c"))
    assert dependency_cycles(graph) == [["c", "a", "b", "c"]]
    assert dependency_cycles(pd().spec.roles) == []


# --- int-or-percent ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        (3, 10, False, 3),
        (3, 10, True, 3),
        ("25%", 10, False, 2),
        ("25%", 10, True, 3),
        ("29%", 100, False, 29),  # exact in integers; floats would give 28.999...
        ("29%", 100, True, 29),
        ("0%", 10, True, 0),
        ("100%", 7, False, 7),
        ("150%", 4, True, 6),
        ("1%", 0, True, 0),
        ("50%", 1, False, 0),
        ("50%", 1, True, 1),
    ],
)
def test_resolve_int_or_percent(value: int | str, total: int, round_up: bool, expected: int) -> None:
    assert resolve_int_or_percent(value, total, round_up) == expected


@pytest.mark.parametrize("value", ["10", "abc", "-5%", "5.5%", "%", " 5%", True])
def test_resolve_int_or_percent_refuses_malformed_values(value: Any) -> None:
    with pytest.raises(ValueError):
        resolve_int_or_percent(value, 10, True)


def test_parse_percent() -> None:
    assert parse_percent("40%") == 40
    with pytest.raises(ValueError, match="invalid percentage"):
        parse_percent("40")
