"""Size and name limits checked before anything is built: the ceilings, the arithmetic discovery
estimate (checked against the real renderer) and every derived name."""

from __future__ import annotations

import resource
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rbg_flows.api import RoleBasedGroup, validate_rbg
from rbg_flows.api.limits import (
    CONFIGMAP_MAX_BYTES,
    MAX_GROUP_PODS,
    MAX_ROLE_REPLICAS,
    derived_names,
    discovery_bytes,
)
from rbg_flows.manifests.discovery import discovery_config, discovery_data

INT32_MAX = 2**31 - 1
TEMPLATE: dict[str, Any] = {"spec": {"containers": [{"name": "main", "image": "engine"}]}}
LWS = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment"}


def group(name: str, *roles: dict[str, Any]) -> RoleBasedGroup:
    return RoleBasedGroup.model_validate(
        {"metadata": {"name": name, "namespace": "ns"}, "spec": {"roles": roles}}
    )


def role(name: str, replicas: int = 1, **fields: Any) -> dict[str, Any]:
    return {"name": name, "replicas": replicas, "template": TEMPLATE, **fields}


def errors_of(rbg: RoleBasedGroup) -> dict[str, str]:
    return {e.path: e.message for e in validate_rbg(rbg)}


def test_ceiling_is_derived_from_the_configmap_limit() -> None:
    # With the shortest names possible, the ceiling's worth of entries fits in a ConfigMap...
    shortest = group("a", role("b", MAX_ROLE_REPLICAS))
    assert discovery_bytes("a", shortest.spec.roles) <= CONFIGMAP_MAX_BYTES
    assert errors_of(shortest) == {}
    # ...and twice as many would not, whatever the names: the ceiling is within a factor 2 of the truth.
    double = group("a", role("b", 2 * MAX_ROLE_REPLICAS)).spec.roles
    assert discovery_bytes("a", double) > CONFIGMAP_MAX_BYTES


def test_int32_replicas_is_refused_in_constant_memory() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    errors = errors_of(group("big", role("r", INT32_MAX)))
    assert set(errors) == {"spec.roles[0].replicas"}
    assert f"{INT32_MAX} is more than {MAX_ROLE_REPLICAS}" in errors["spec.roles[0].replicas"]
    # Building per replica would need gigabytes; this is a safety bound, not a measurement.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024


def test_just_over_the_ceiling() -> None:
    assert errors_of(group("g", role("r", MAX_ROLE_REPLICAS))) == {}
    errors = errors_of(group("g", role("r", MAX_ROLE_REPLICAS + 1)))
    assert list(errors) == ["spec.roles[0].replicas"]


def test_discovery_builder_refuses_before_building() -> None:
    with pytest.raises(ValueError, match="discovery file would be about"):
        discovery_data(group("big", role("r", INT32_MAX)))


def test_discovery_size_with_real_names_binds_below_the_ceiling() -> None:
    ports = [{"name": "http-api", "port": 8000}, {"name": "metrics", "port": 9090}]
    errors = errors_of(group("pd-demo", role("prefill", 20_000, servicePorts=ports)))
    assert list(errors) == ["spec.roles"]
    assert "discovery ConfigMap would be about" in errors["spec.roles"]


def test_total_pods_per_group() -> None:
    lws = role("w", 30_000, workload=LWS, leaderWorkerSet={"size": 8})
    errors = errors_of(group("g", lws))
    assert errors["spec.roles"].startswith(f"the group has 240000 pods in total, more than {MAX_GROUP_PODS}")


def test_huge_lws_size_is_named() -> None:
    errors = errors_of(group("g", role("w", 1, workload=LWS, leaderWorkerSet={"size": INT32_MAX})))
    assert "spec.roles[0].leaderWorkerSet.size" in errors


@pytest.mark.parametrize(
    ("rbg_name", "spec", "fragment"),
    [
        # 52 + "-" + 10 hash characters = 63: the longest StatefulSet whose pods can be created.
        ("g" * 46, role("r" * 6), "StatefulSet controller-revision-hash label value"),
        ("g" * 50, role("r" * 9, 10_000), "pod name (highest ordinal 9999) 'gggggggggg"),
        ("g" * 45, role("r" * 5, 10, workload=LWS, leaderWorkerSet={"size": 4}), "worker StatefulSet"),
        ("g" * 50, role("r" * 13, workload=DEPLOYMENT), "workload name"),
    ],
)
def test_derived_name_too_long(rbg_name: str, spec: dict[str, Any], fragment: str) -> None:
    message = errors_of(group(rbg_name, spec))["spec.roles[0].name"]
    assert fragment in message and "more than 63" in message


def test_longest_names_that_fit() -> None:
    assert errors_of(group("g" * 45, role("r" * 5))) == {}  # StatefulSet of 51 + "-" + hash = 62
    assert errors_of(group("g" * 46, role("r" * 5))) == {}  # 52: exactly 63
    assert errors_of(group("g" * 50, role("r" * 12, workload=DEPLOYMENT))) == {}  # 63


def test_role_revision_label_key() -> None:
    errors = errors_of(group("g", role("r" * 45, workload=DEPLOYMENT)))
    assert "role-revision-hash-" in errors["spec.roles[0].name"]


@pytest.mark.parametrize(
    ("name", "fragment"), [("my.group", "DNS-1123 label"), ("1group", "must start with a letter")]
)
def test_group_name(name: str, fragment: str) -> None:
    assert fragment in errors_of(group(name, role("r")))["metadata.name"]


def test_a_deployment_group_may_start_with_a_digit() -> None:
    assert errors_of(group("1group", role("r", workload=DEPLOYMENT))) == {}


def test_derived_names_are_the_real_ones() -> None:
    names = {
        n.what: n.value for n in derived_names("pd", group("pd", role("w", 3, workload=LWS)).spec.roles[0])
    }
    assert names["leader pod name (highest group 2)"] == "pd-w-2"
    lws4 = group("pd", role("w", 3, workload=LWS, leaderWorkerSet={"size": 4})).spec.roles[0]
    names = {n.what: n.value for n in derived_names("pd", lws4)}
    assert names["worker pod name (highest group 2, worker 3)"] == "pd-w-2-3"


_label = st.from_regex(r"[a-z]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_port = st.fixed_dictionaries(
    {
        "name": st.one_of(st.none(), st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,8}", fullmatch=True)),
        "port": st.integers(1, 65535),
    }
)


@settings(max_examples=80, deadline=None)
@given(
    name=_label,
    roles=st.lists(
        st.tuples(_label, st.integers(0, 60), st.lists(_port, max_size=3)),
        min_size=1,
        max_size=4,
        unique_by=lambda r: r[0],
    ),
)
def test_discovery_estimate_bounds_the_rendered_file(name: str, roles: list[Any]) -> None:
    specs = []
    for role_name, replicas, ports in roles:
        # Ports that normalise alike are refused by validation; keep the generated ones distinct.
        unique = {(p["name"] or f"port{p['port']}").replace("-", "_").lower(): p for p in ports}
        specs.append(role(role_name, replicas, servicePorts=list(unique.values())))
    rbg = group(name, *specs)
    actual = len(discovery_config(rbg).encode())
    estimate = discovery_bytes(name, rbg.spec.roles)
    assert actual <= estimate
    # Tight enough to be useful: the slack is the quotes allowed for on every entry.
    instances = sum(r.replicas for r in rbg.spec.roles)
    assert estimate - actual <= 64 + 16 * len(rbg.spec.roles) + 2 * instances * 4
