"""The sim's topology file: parsing, validation messages, the built-in clusters and the dump round trip."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from rbg_flows.sim.topology import (
    CLIQUE,
    GPU,
    INTERCONNECT,
    RDMA_BLOCK,
    ZONE,
    Topology,
    TopologyError,
    default_topology,
    dump_topology,
    generated_topology,
    parse_topology,
)

GOOD = """\
nodes:
- name: gpu
  count: 3
  capacity: {cpu: "96", memory: 1Ti, nvidia.com/gpu: "8"}
  labels: {topology.kubernetes.io/zone: zone-a, rbg.x-k8s.io/rdma-block: rdma-0}
  taints:
  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
- name: cpu
  capacity: {cpu: 64, memory: 256Gi, pods: "250"}
"""


def _error(text: str) -> str:
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "my.yaml")
    return str(info.value)


def test_parse_accepts_a_good_file() -> None:
    topo = parse_topology(GOOD)
    assert [name for name, _ in topo.expand()] == ["gpu-0", "gpu-1", "gpu-2", "cpu"]
    gpu, cpu = topo.nodes
    assert gpu.capacity == {"cpu": "96", "memory": "1Ti", GPU: "8", "pods": "110"}  # pods defaulted
    assert gpu.labels[ZONE] == "zone-a"
    assert gpu.taints[0].effect == "NoSchedule" and gpu.taints[0].value == "present"
    # An unquoted YAML number is a quantity as in any Kubernetes manifest; an explicit pods is kept.
    assert cpu.capacity == {"cpu": "64", "memory": "256Gi", "pods": "250"}


def test_numbered_single_node_and_defaults() -> None:
    topo = parse_topology("nodes:\n- {name: solo, numbered: true}\n- {name: plain}\n")
    assert [name for name, _ in topo.expand()] == ["solo-0", "plain"]
    assert topo.nodes[1].capacity == {"cpu": "32", "memory": "256Gi", "pods": "110"}


@pytest.mark.parametrize("qty", ["1", "250m", "1.5", ".5", "1Gi", "256Mi", "1Ki", "2k", "1e3", "+4", "100n"])
def test_valid_quantities(qty: str) -> None:
    topo = parse_topology(f"nodes:\n- name: a\n  capacity: {{cpu: '{qty}'}}\n")
    assert topo.nodes[0].capacity["cpu"] == qty


@pytest.mark.parametrize("qty", ["lots", "1.5.2", "-1", "1ki", "1mi", "1 Gi", "Gi", "1GiB", ""])
def test_bad_quantity_names_the_resource(qty: str) -> None:
    msg = _error(f"nodes:\n- name: a\n- name: b\n  capacity: {{memory: 1Gi, cpu: '{qty}'}}\n")
    assert msg.startswith("my.yaml: ")
    assert "nodes[1].capacity.cpu" in msg
    assert "not a Kubernetes quantity" in msg
    assert "memory" not in msg


def test_non_scalar_quantity_is_refused() -> None:
    msg = _error("nodes:\n- name: a\n  capacity: {cpu: [1, 2]}\n")
    assert "nodes[0].capacity.cpu" in msg and "not a Kubernetes quantity" in msg
    assert "nodes[0].capacity.cpu" in _error("nodes:\n- name: a\n  capacity: {cpu: true}\n")


def test_unknown_field() -> None:
    msg = _error("nodes:\n- name: a\n  colour: red\n")
    assert "nodes[0].colour" in msg and "Extra inputs are not permitted" in msg
    assert "extra: Extra inputs" in _error("nodes: [{name: a}]\nextra: 1\n")


def test_bad_taint_effect() -> None:
    msg = _error("nodes:\n- name: a\n- name: b\n  taints:\n  - {key: k}\n  - {key: k, effect: Never}\n")
    assert "nodes[1].taints[1].effect" in msg
    assert "NoSchedule" in msg and "NoExecute" in msg
    assert "nodes[1].taints[0].effect" in msg  # the missing effect is reported too


def test_duplicate_node_names() -> None:
    msg = _error("nodes:\n- name: a\n- name: b\n- name: a\n")
    assert "nodes[2]" in msg and "'a' is used twice" in msg
    # A numbered group's expanded name collides with a plain node.
    msg = _error("nodes:\n- {name: g, count: 2}\n- {name: g-1}\n")
    assert "nodes[1]" in msg and "'g-1' is used twice" in msg


def test_empty_nodes_list() -> None:
    msg = _error("nodes: []\n")
    assert "nodes:" in msg and "at least 1" in msg
    assert "nodes: Field required" in _error("{}\n")


@pytest.mark.parametrize("text", ["nodes: [a: b\n", "nodes:\n  - name: a\n bad: indent\n", "key: @value\n"])
def test_non_yaml(text: str) -> None:
    msg = _error(text)
    assert msg.startswith("my.yaml: not YAML")


@pytest.mark.parametrize("text", ["", "- 1\n", "just a string\n"])
def test_yaml_that_is_not_a_mapping(text: str) -> None:
    assert "(root)" in _error(text)


@pytest.mark.parametrize("name", ["Bad_Name", "UPPER", "-lead", "trail-", "a" * 241, "has space"])
def test_bad_name(name: str) -> None:
    msg = _error(f"nodes:\n- name: ok\n- name: '{name}'\n")
    assert "nodes[1].name" in msg and "not a DNS subdomain name" in msg


def test_bad_count() -> None:
    assert "nodes[0].count" in _error("nodes:\n- {name: a, count: 0}\n")


def test_default_topology_promise() -> None:
    topo = default_topology()
    nodes = topo.expand()
    gpu_nodes = [(n, g) for n, g in nodes if g.capacity.get(GPU) == "8"]
    assert len(gpu_nodes) >= 16
    assert len({n for n, _ in nodes}) == len(nodes)
    assert {g.labels[ZONE] for _, g in nodes} == {"zone-a", "zone-b"}
    assert {g.labels[ZONE] for _, g in gpu_nodes} == {"zone-a", "zone-b"}
    assert len({g.labels[RDMA_BLOCK] for _, g in gpu_nodes}) >= 3
    assert {g.labels[INTERCONNECT] for _, g in gpu_nodes} == {"nvlink", "pcie"}
    cliques = Counter(g.labels[CLIQUE] for _, g in nodes if CLIQUE in g.labels)
    assert len(cliques) == 1
    (members,) = cliques.values()
    assert members >= 2
    # The clique is a multi-node NVLink domain: every member is an NVLink node with GPUs.
    assert all(
        g.labels[INTERCONNECT] == "nvlink" and g.capacity[GPU] == "8" for _, g in nodes if CLIQUE in g.labels
    )


def test_default_topology_survives_validation() -> None:
    # Built through the constructors; it must also be a valid file.
    again = Topology.model_validate(default_topology().model_dump())
    assert again == default_topology()


def test_generated_topology_1000() -> None:
    topo = generated_topology(1000)
    names = [n for n, _ in topo.expand()]
    assert len(names) == 1000
    assert len(set(names)) == 1000
    groups = [g for _, g in topo.expand()]
    assert all(g.capacity[GPU] == "8" for g in groups)
    assert {g.labels[INTERCONNECT] for g in groups} == {"nvlink", "pcie"}
    cliques = Counter(g.labels[CLIQUE] for g in groups if CLIQUE in g.labels)
    assert cliques and max(cliques.values()) <= 8
    blocks = Counter(g.labels[RDMA_BLOCK] for g in groups)
    assert max(blocks.values()) <= 16 and sum(blocks.values()) == 1000


@pytest.mark.parametrize("n", [1, 7, 17, 33])
def test_generated_topology_odd_sizes(n: int) -> None:
    names = [name for name, _ in generated_topology(n).expand()]
    assert len(names) == n == len(set(names))


def _node_set(topo: Topology) -> dict[str, tuple[object, ...]]:
    return {
        name: (
            tuple(sorted(g.capacity.items())),
            tuple(sorted(g.labels.items())),
            tuple(t.model_dump_json() for t in g.taints),
        )
        for name, g in topo.expand()
    }


@pytest.mark.parametrize(
    "make",
    [default_topology, lambda: generated_topology(100), lambda: parse_topology(GOOD)],
    ids=["default", "generated", "file"],
)
def test_dump_parse_round_trip(make: Callable[[], Topology]) -> None:
    topo = make()
    text = dump_topology(topo)
    again = parse_topology(text)
    assert _node_set(again) == _node_set(topo)
    assert len(_node_set(again)) == len(topo.expand())
    assert dump_topology(again) == text
