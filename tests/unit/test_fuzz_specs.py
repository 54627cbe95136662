"""Property: any object a user could apply goes through validation and, when valid, manifest building with
no exception other than the documented refusal (`parse_rbg` returning field errors, each with a path).

The objects are generated as JSON-like data, not as models: wrong types, unknown and missing fields,
bad names, cycles, huge and negative numbers, unicode, conflicting fields, every workload kind and rollout
knob, in v1alpha1 and v1alpha2. RBG_FUZZ_EXAMPLES=5000 runs a deep pass.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rbg_flows.api import parse_rbg, parse_rbgs
from rbg_flows.api.conversion import V1ALPHA1, V1ALPHA2, ConversionError, convert
from rbg_flows.manifests import build_role_objects, discovery_configmap
from rbg_flows.manifests.group_set import set_child

EXAMPLES = int(os.environ.get("RBG_FUZZ_EXAMPLES", "100"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = st.integers(0, 9).flatmap(
    lambda i: (
        st.sampled_from(["Décode", "x" * 70, "", "1st", "-bad"])
        if i == 9
        else st.sampled_from(["prefill", "decode", "router", "a", "b"])
    )
)
# Mostly plausible values, some of each kind of bad one: a good share of the groups is valid and built.
INTS = st.integers(0, 9).flatmap(
    lambda i: st.sampled_from([-1, 0, 2**31 - 1, 32769, 10**12, -(2**31)]) if i == 9 else st.integers(1, 6)
)
INT_OR_PERCENT = st.one_of(INTS, st.sampled_from(["25%", "100%", "50%", "0%", "150%", "abc"]))
SCALARS = st.one_of(
    st.none(), st.booleans(), INTS, st.text(max_size=8), st.floats(allow_nan=False), st.just([])
)


_ABSENT = object()


def fields(**kw: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Optional fields: each present three times in four (the rest: absent)."""
    present = st.integers(0, 3).map(bool)
    return st.fixed_dictionaries(
        {k: st.tuples(present, v).map(lambda p: p[1] if p[0] else _ABSENT) for k, v in kw.items()}
    ).map(lambda d: {k: v for k, v in d.items() if v is not _ABSENT})


def corrupted(obj: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """`obj` with one value somewhere replaced by a scalar of any type (a wrong type, a null)."""
    holders: list[tuple[dict[str, Any] | list[Any], Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                holders.append((node, k))
                walk(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                holders.append((node, i))
                walk(v)

    walk(obj["spec"])
    if holders:
        holder, key = data.draw(st.sampled_from(holders))
        holder[key] = data.draw(SCALARS)
    return obj


CONTAINER = st.tuples(
    st.fixed_dictionaries({"name": st.sampled_from(["engine", "sidecar"]), "image": st.just("engine:v1")}),
    fields(
        env=st.lists(
            fields(name=st.sampled_from(["A", "1-BAD", "B"]), value=st.text(max_size=5)), max_size=2
        ),
        ports=st.lists(fields(containerPort=INTS, name=st.sampled_from(["http", "Bad Name"])), max_size=2),
    ),
).map(lambda parts: {**parts[0], **parts[1]})
TEMPLATE = st.fixed_dictionaries(
    {"spec": st.fixed_dictionaries({"containers": st.lists(CONTAINER, min_size=1, max_size=2)})},
    optional={
        "metadata": fields(
            labels=st.dictionaries(st.sampled_from(["app", "a/b", "x" * 70]), st.text(max_size=5))
        )
    },
)
WORKLOAD = st.sampled_from(
    [
        {"apiVersion": "apps/v1", "kind": "StatefulSet"},
        {"apiVersion": "apps/v1", "kind": "Deployment"},
        {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
        {"apiVersion": "apps/v1", "kind": "DaemonSet"},
        {"kind": "StatefulSet"},
        {},
    ]
)
ROLE = st.tuples(
    st.fixed_dictionaries({"name": NAMES, "template": TEMPLATE}),
    fields(
        replicas=INTS,
        dependencies=st.lists(NAMES, max_size=3),
        workload=WORKLOAD,
        templateRef=fields(name=st.sampled_from(["base", "missing"])),
        templatePatch=TEMPLATE,
        leaderWorkerSet=fields(size=INTS, patchLeaderTemplate=TEMPLATE, patchWorkerTemplate=TEMPLATE),
        restartPolicy=st.sampled_from(
            ["None", "RecreateRBGOnPodRestart", "RecreateRoleInstanceOnPodRestart", "Bogus"]
        ),
        rolloutStrategy=fields(
            type=st.sampled_from(["RollingUpdate", "RollingUpdate", "RollingUpdate", "Teleport"]),
            rollingUpdate=fields(
                partition=INT_OR_PERCENT, maxUnavailable=INT_OR_PERCENT, maxSurge=INT_OR_PERCENT
            ),
        ),
        scalingAdapter=fields(enable=st.booleans()),
        servicePorts=st.lists(fields(name=st.text(max_size=4), port=INTS), max_size=2),
    ),
).map(lambda parts: {**parts[0], **parts[1]})
COORDINATION = fields(
    name=NAMES,
    roles=st.lists(NAMES, max_size=3),
    strategy=fields(
        rollingUpdate=fields(maxSkew=INT_OR_PERCENT, partition=INT_OR_PERCENT),
        scaling=fields(
            maxSkew=INT_OR_PERCENT, progression=st.sampled_from(["OrderScheduled", "OrderReady", "x"])
        ),
    ),
)
SPEC = st.tuples(
    st.fixed_dictionaries({"roles": st.lists(ROLE, min_size=1, max_size=4)}),
    fields(
        roleTemplates=st.lists(
            fields(name=st.sampled_from(["base", "other"]), template=TEMPLATE), max_size=2
        ),
        coordination=st.lists(COORDINATION, max_size=2),
        rolloutOrder=st.lists(NAMES, max_size=3),
        placement=fields(pairs=st.lists(st.lists(NAMES, max_size=3), max_size=2)),
    ),
).map(lambda parts: {**parts[0], **parts[1]})
GROUP = st.builds(
    lambda name, spec: {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": name, "namespace": "fuzz", "uid": "fuzz-uid"},
        "spec": spec,
    },
    st.sampled_from(["pd", "pd", "pd", "g" * 64, "1pd", "pd.demo", "Pd"]),
    SPEC,
)


def check_group(obj: dict[str, Any]) -> None:
    rbg, errors = parse_rbg(obj)
    assert all(e.path and e.message for e in errors), errors
    event("refused" if errors else "valid")
    if rbg is None or errors:
        return
    # Valid: every object builds, in the group's namespace whatever the spec names (nothing a user
    # writes sends the orchestrator to another namespace).
    built = [obj for role in rbg.spec.roles for obj in build_role_objects(rbg, role)]
    built.append(discovery_configmap(rbg))
    assert {o["metadata"]["namespace"] for o in built} == {obj["metadata"]["namespace"]}


@SETTINGS
@given(GROUP)
def test_any_group_is_refused_by_field_or_builds(obj: dict[str, Any]) -> None:
    check_group(obj)


@SETTINGS
@given(GROUP, st.data())
def test_a_group_with_a_wrong_type_anywhere_is_refused_by_field(
    obj: dict[str, Any], data: st.DataObject
) -> None:
    check_group(corrupted(obj, data))


@SETTINGS
@given(GROUP)
def test_any_group_in_v1alpha2_is_refused_by_field_or_builds(obj: dict[str, Any]) -> None:
    try:
        v2 = convert(obj, V1ALPHA2)
    except ConversionError as e:
        assert e.path  # the conversion webhook names the field too
        return
    check_group(v2)
    check_group(convert(v2, V1ALPHA1))


@SETTINGS
@given(st.one_of(INTS, SCALARS), SPEC)
def test_any_set_is_refused_by_field_or_its_groups_build(replicas: Any, template: Any) -> None:
    obj = {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroupSet",
        "metadata": {"name": "fleet", "namespace": "fuzz", "uid": "set-uid"},
        "spec": {"replicas": replicas, "template": template},
    }
    rbgs, errors = parse_rbgs(obj)
    assert all(e.path and e.message for e in errors), errors
    if rbgs is None or errors:
        return
    child = set_child(obj, max(rbgs.spec.replicas - 1, 0))
    child["metadata"]["uid"] = "child-uid"
    rbg, child_errors = parse_rbg(child)
    # What the set validated, its group validates too.
    assert rbg is not None and child_errors == [], child_errors
    check_group(child)


@st.composite
def plausible_group(draw: st.DrawFn) -> dict[str, Any]:
    """A group a careful user would write: distinct role names, dependencies on earlier roles only, served
    workload kinds, sizes and percentages in range; what varies is every combination of them."""
    names = draw(
        st.lists(
            st.sampled_from(["router", "prefill", "decode", "cache", "a"]),
            min_size=1,
            max_size=4,
            unique=True,
        )
    )
    roles = []
    for i, name in enumerate(names):
        workload = draw(WORKLOAD.filter(lambda w: w.get("kind") != "DaemonSet"))
        role: dict[str, Any] = {
            "name": name,
            "replicas": draw(st.integers(0, 6)),
            "workload": workload,
            "template": draw(TEMPLATE),
            "dependencies": draw(st.lists(st.sampled_from(names[:i]), unique=True)) if i else [],
            "restartPolicy": draw(
                st.sampled_from(["None", "RecreateRBGOnPodRestart", "RecreateRoleInstanceOnPodRestart"])
            ),
            "rolloutStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": draw(st.sampled_from([1, 2, "25%", "100%"]))},
            },
            "scalingAdapter": {"enable": draw(st.booleans())},
        }
        if workload.get("kind") == "LeaderWorkerSet":
            role["leaderWorkerSet"] = {"size": draw(st.integers(1, 4))}
        roles.append(role)
    spec: dict[str, Any] = {"roles": roles}
    if len(names) >= 2 and draw(st.booleans()):
        pair = draw(st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True))
        spec["coordination"] = [
            {
                "name": "rule",
                "roles": pair,
                "strategy": {"rollingUpdate": {"maxSkew": draw(st.sampled_from(["25%", "50%", 1]))}},
            }
        ]
    if draw(st.booleans()):
        spec["rolloutOrder"] = draw(st.permutations(names))
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "pd", "namespace": "fuzz", "uid": "fuzz-uid"},
        "spec": spec,
    }


@SETTINGS
@given(plausible_group())
def test_plausible_groups_validate_and_build(obj: dict[str, Any]) -> None:
    rbg, errors = parse_rbg(obj)
    event("refused" if errors else "valid")
    check_group(obj)
    if not errors:
        assert rbg is not None and [r.name for r in rbg.spec.roles] == [
            r["name"] for r in obj["spec"]["roles"]
        ]
