"""The placement model and search: tiers, packing, exclusivity, and the optimum on small instances."""

from __future__ import annotations

from itertools import product
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rbg_flows.api import RoleBasedGroupSpec, parse_rbg
from rbg_flows.placement import pack
from rbg_flows.placement.demand import Component, components
from rbg_flows.placement.ledger import Entry, Grant, parse_ledger, prune, reserve
from rbg_flows.placement.oracle import optimum
from rbg_flows.placement.solve import solve
from rbg_flows.placement.tiers import Tier
from rbg_flows.placement.topology import Cluster, GpuNode, cluster_from_snapshot, tier_between

# -- model -----------------------------------------------------------------------------------------


def _node(name: str, free: int = 8, nvlink: bool = False, **kw: str | None) -> GpuNode:
    return GpuNode(name=name, free=free, nvlink=nvlink, **kw)  # type: ignore[arg-type]


def test_tiers_between_nodes_follow_the_interconnect_order() -> None:
    nvl = _node("a", nvlink=True, clique="c1", block="b1", zone="z1")
    clique_mate = _node("b", nvlink=True, clique="c1", block="b1", zone="z1")
    block_mate = _node("c", block="b1", zone="z1")
    zone_mate = _node("d", block="b2", zone="z1")
    far = _node("e", block="b3", zone="z2")
    pcie = _node("f", block="b1", zone="z1")
    assert tier_between(nvl, nvl) is Tier.NVLINK
    assert tier_between(pcie, pcie) is Tier.PCIE
    assert tier_between(nvl, clique_mate) is Tier.NVLINK
    assert tier_between(nvl, block_mate) is Tier.RDMA
    assert tier_between(nvl, zone_mate) is Tier.ZONE
    assert tier_between(nvl, far) is Tier.NONE
    assert Tier.NVLINK > Tier.PCIE > Tier.RDMA > Tier.ZONE > Tier.NONE


def _k8s_node(
    name: str, gpus: str, labels: dict[str, str], ready: str = "True", **spec: object
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": dict(spec),
        "status": {
            "allocatable": {"nvidia.com/gpu": gpus},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def _pod(node: str | None, gpus: int, phase: str = "Running", group: str | None = None) -> dict[str, Any]:
    labels = {"rolebasedgroup.workloads.x-k8s.io/group-unique-key": group} if group else {}
    return {
        "metadata": {"labels": labels},
        "spec": {"nodeName": node, "containers": [{"resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]},
        "status": {"phase": phase},
    }


def test_free_gpus_are_allocatable_minus_live_bound_pods() -> None:
    nodes = [
        _k8s_node("n1", "8", {"rbg.x-k8s.io/rdma-block": "b"}),
        _k8s_node("n2", "8", {}, ready="False"),
        _k8s_node("n3", "8", {}, unschedulable=True),
        _k8s_node("cpu", "0", {}),
    ]
    pods = [_pod("n1", 3, group="g1"), _pod("n1", 2, phase="Succeeded"), _pod(None, 4), _pod("n1", 1)]
    cluster = cluster_from_snapshot(nodes, pods)
    assert [(n.name, n.free, n.block, n.tenants) for n in cluster.nodes] == [
        ("n1", 4, "b", frozenset({"g1"}))
    ]


# -- demand ----------------------------------------------------------------------------------------


def _group(placement: dict[str, Any] | None = None, decode_lws: bool = False) -> RoleBasedGroupSpec:
    gpu = {"containers": [{"name": "e", "image": "x", "resources": {"limits": {"nvidia.com/gpu": 2}}}]}
    decode: dict[str, Any] = {"name": "decode", "replicas": 1, "template": {"spec": gpu}}
    if decode_lws:
        decode |= {
            "workload": {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"},
            "leaderWorkerSet": {"size": 2},
        }
    spec = {
        "roles": [
            {"name": "router", "template": {"spec": {"containers": [{"name": "r", "image": "x"}]}}},
            {"name": "prefill", "replicas": 2, "template": {"spec": gpu}},
            decode,
        ],
        **({"placement": placement} if placement is not None else {}),
    }
    rbg, errors = parse_rbg(
        {
            "apiVersion": "workloads.x-k8s.io/v1alpha1",
            "kind": "RoleBasedGroup",
            "metadata": {"name": "g"},
            "spec": spec,
        }
    )
    assert rbg is not None and not errors, errors
    return rbg.spec


def test_every_pair_of_gpu_roles_communicates_by_default() -> None:
    (comp,) = components(_group())
    assert comp.roles == ("decode", "prefill") and comp.pods == (2, 2, 2) and comp.pairs == 2


def test_leader_and_workers_of_an_unpaired_instance_form_their_own_component() -> None:
    comps = components(_group({"pairs": [["prefill", "prefill"]]}, decode_lws=True))
    assert [(c.name, c.pods, c.pairs) for c in comps] == [("decode/0", (2, 2), 1)]
    comps = components(_group(decode_lws=True))
    # Default pairs join prefill and decode; the LeaderWorkerSet's instance adds its leader-worker pair.
    assert [(c.name, c.pods, c.pairs) for c in comps] == [("decode+prefill", (2, 2, 2, 2), 2 * 2 + 1)]


# -- packing ---------------------------------------------------------------------------------------


def _brute_fits(pods: list[tuple[int, tuple[int, ...]]], free: list[int]) -> bool:
    for assign in product(*(allowed for _, allowed in pods)):
        left = list(free)
        for (need, _), node in zip(pods, assign, strict=True):
            left[node] -= need
        if min(left, default=0) >= 0:
            return True
    return not pods


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 8), min_size=1, max_size=4),
    st.lists(st.tuples(st.integers(1, 8), st.sets(st.integers(0, 3), min_size=1)), max_size=6),
)
def test_packing_answers_like_brute_force(free: list[int], raw: list[tuple[int, set[int]]]) -> None:
    pods = [(need, tuple(sorted(i for i in allowed if i < len(free)))) for need, allowed in raw]
    pods = [p for p in pods if p[1]]
    assert pack.fits(pods, free, budget=10**6) == _brute_fits(pods, free)


# -- search ----------------------------------------------------------------------------------------

nodes_st = st.lists(
    st.builds(
        lambda free, nvl, clique, block, zone, tenant: (free, nvl, clique, block, zone, tenant),
        st.integers(0, 8),
        st.booleans(),
        st.sampled_from([None, "c0", "c1"]),
        st.sampled_from(["b0", "b1", "b2"]),
        st.sampled_from(["z0", "z1"]),
        st.sampled_from([None, None, None, "other"]),
    ),
    min_size=1,
    max_size=8,
)
comps_st = st.lists(
    st.tuples(st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=4), st.integers(0, 6)),
    min_size=1,
    max_size=3,
)


def _instance(
    raw_nodes: list[tuple[Any, ...]], raw_comps: list[tuple[Any, ...]]
) -> tuple[Cluster, list[Component]]:
    nodes = [
        GpuNode(f"n{i}", free, nvl, clique, block, zone, frozenset([t]) if t else frozenset())
        for i, (free, nvl, clique, block, zone, t) in enumerate(raw_nodes)
    ]
    comps = [
        Component(f"c{i}", (f"c{i}",), tuple(sorted(p, reverse=True)), pairs)
        for i, (p, pairs) in enumerate(raw_comps)
    ]
    return Cluster(nodes), comps


@settings(max_examples=400, deadline=None)
@given(nodes_st, comps_st, st.sampled_from(list(Tier)[1:]), st.booleans(), st.booleans())
def test_the_choice_scores_the_exhaustive_optimum_and_respects_capacity_and_exclusivity(
    raw_nodes: list[tuple[Any, ...]],
    raw_comps: list[tuple[Any, ...]],
    level: Tier,
    required: bool,
    exclusive: bool,
) -> None:
    cluster, comps = _instance(raw_nodes, raw_comps)
    got = solve(cluster, comps, level=level, required=required, exclusive=exclusive)
    best = optimum(cluster, comps, level=level, required=required, exclusive=exclusive)
    assert got.complete
    if best is None:
        assert got.error and not got.choices
        return
    assert got.error is None and got.score == best
    placed = [(g, c.domain.nodes) for c in got.choices if c.domain for g in c.component.pods]
    assert pack.fits(placed, [n.free for n in cluster.nodes], budget=10**6)
    for c in got.choices:
        if c.domain is None:
            assert not required
            continue
        assert not required or c.domain.tier >= level
        assert not exclusive or not any(cluster.nodes[i].tenants for i in c.domain.nodes)


def test_required_rdma_takes_a_block_and_a_shortfall_names_level_and_room() -> None:
    cluster = Cluster(
        [
            _node("a", 4, block="b0", zone="z"),
            _node("b", 2, block="b0", zone="z"),
            _node("c", 8, block="b1", zone="z"),
        ]
    )
    comp = Component("prefill+decode", ("decode", "prefill"), (2, 2, 2), 2)
    got = solve(cluster, [comp], level=Tier.RDMA, required=True)
    (choice,) = got.choices
    assert choice.domain is not None
    assert (choice.domain.key, choice.domain.value, choice.tier) == (
        "rbg.x-k8s.io/rdma-block",
        "b0",
        Tier.RDMA,
    )
    big = Component("prefill+decode", ("decode", "prefill"), (4, 4, 2), 2)
    refused = solve(cluster, [big], level=Tier.RDMA, required=True)
    assert refused.error == "prefill+decode needs 10 GPUs in one rdma-block; the best rdma-block has 8 free"


def test_preferred_degrades_tier_by_tier_and_ties_break_the_same_way_every_time() -> None:
    nodes = [_node(f"n{i}", 4, nvlink=True, block="b0", zone="z") for i in range(3)]
    comp = Component("x", ("x",), (4, 4), 1)
    first = solve(Cluster(nodes), [comp], level=Tier.NVLINK, required=False)
    assert first.choices[0].tier is Tier.RDMA and first.score == 2
    assert solve(Cluster(list(reversed(nodes))), [comp], level=Tier.NVLINK, required=False) == first


def test_a_placed_group_keeps_its_domain_and_a_required_one_that_outgrew_it_is_refused() -> None:
    cluster = Cluster([_node("a", 4, block="b0"), _node("b", 8, block="b1")])
    comp = Component("x", ("x",), (2, 2), 1)
    pinned = {"x": (int(Tier.RDMA), "rbg.x-k8s.io/rdma-block", "b0")}
    kept = solve(cluster, [comp], level=Tier.RDMA, required=True, pinned=pinned)
    assert (
        kept.choices[0].domain is not None and kept.choices[0].domain.value == "b0"
    )  # best fit would also say b0; pinned says so regardless
    grown = Component("x", ("x",), (2, 2, 2), 1)
    refused = solve(cluster, [grown], level=Tier.RDMA, required=True, pinned=pinned)
    assert refused.error == "x grew beyond its rdma-block b0: needs 6 GPUs, it has 4 free"
    spilled = solve(cluster, [grown], level=Tier.RDMA, required=False, pinned=pinned)
    (spill,) = spilled.choices
    assert spill.spilled and spill.domain is not None and spill.domain.value == "b0"


# -- ledger ----------------------------------------------------------------------------------------


def test_a_grant_not_yet_materialized_holds_its_gpus_and_an_exclusive_one_its_whole_domain() -> None:
    nodes = [_node("a", 8, block="b0"), _node("b", 8, block="b0"), _node("c", 8, block="b1")]
    cluster = Cluster(nodes)
    block0 = (int(Tier.RDMA), "rbg.x-k8s.io/rdma-block", "b0")
    other = Entry("other", "u1", False, (Grant("x", block0, (4, 4, 2)),))
    # One of its 4-GPU pods is already running (and counted in the snapshot): the rest is held.
    held = reserve(cluster, {"other": other}, {"other": [4]}, me="me")
    assert sum(n.free for n in held.nodes[:2]) == 16 - 6 and held.nodes[2].free == 8
    assert all("other" in n.tenants for n in held.nodes[:2]) and not held.nodes[2].tenants
    exclusive = Entry("other", "u1", True, (Grant("x", block0, (2,)),))
    taken = reserve(cluster, {"other": exclusive}, {}, me="me")
    assert [n.free for n in taken.nodes] == [0, 0, 8]
    # A group's own grant is never held against it.
    assert [n.free for n in reserve(cluster, {"me": exclusive}, {}, me="me").nodes] == [8, 8, 8]


def test_ledger_entries_round_trip_and_garbage_is_dropped_not_crashed_on() -> None:
    entry = Entry("g", "u", True, (Grant("decode/0", (4, "nvidia.com/gpu.clique", "c0"), (8, 8)),))
    assert parse_ledger({"g": entry.dumps(), "bad": "{not json", "worse": '{"uid": 1}'}) == {"g": entry}
    assert prune({"g": entry}, {"g": "u"}) == {"g": entry}
    assert prune({"g": entry}, {"g": "another-uid"}) == {} == prune({"g": entry}, {})
