"""`rbg-flows plan` against the sim: what it prints before an apply is what the operation then does
(the coordinated upgrade's steps, read back from the operation's step summaries in its Temporal
history; the placement's domains, tier and score, read back from the group's status), and printing it
changes nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.api.enums.v1 import EventType

from .conftest import SimCluster
from .rbg_helpers import create_rbg, example, rbgs, wait_ready
from .test_placement import group, until_gpus_free
from .test_upgrade import NAME, NEW, change, cli, deployed, set_engine_image, settled

pytestmark = pytest.mark.sim
PLANNED_STEP = re.compile(r"^\s+step (\d+): (.+?)  \((\d+) pods, skew (\d+)%\)$")
TAKEN_STEP = re.compile(r"^step (\d+) \((.+?)\): ")
# The test worker runs outside a cluster: its placement ledger is in `default` (rbg_flows.incluster).
WORKER_NAMESPACE = "default"


def manifest(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / "rbg.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


async def step_summaries(temporal_env: Any, workflow_id: str) -> list[tuple[int, str]]:
    """The (step number, roles moved) of each step the operation took, in order, from the summaries
    of its step activities (one per role a step moves: the same text for each)."""
    history = await temporal_env.client.get_workflow_handle(workflow_id).fetch_history()
    converter = temporal_env.client.data_converter.payload_converter
    taken: list[tuple[int, str]] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        if not event.user_metadata.HasField("summary"):
            continue
        match = TAKEN_STEP.match(converter.from_payload(event.user_metadata.summary, str))
        if match and (step := (int(match[1]), match[2])) not in taken:
            taken.append(step)
    return taken


async def test_plan_of_a_coordinated_upgrade_lists_the_steps_the_upgrade_then_takes(
    sim: SimCluster,
    kube: Any,
    orchestrator: Any,
    temporal_env: Any,
    temporal_address: str,
    namespace: str,
    cluster_id: str,
    tmp_path: Path,
) -> None:
    await deployed(kube, namespace)
    body = example("coordinated-upgrade.yaml")
    body["spec"]["roleTemplates"][0]["template"]["spec"]["containers"][0]["image"] = NEW
    path = manifest(tmp_path, body)

    out = cli(sim, temporal_address, namespace, "plan", "-f", str(path), kubectl=True)
    assert out.returncode == 0, out.stderr
    assert "upgrade: roll prefill, decode" in out.stdout, out.stdout
    planned = [m for m in map(PLANNED_STEP.match, out.stdout.splitlines()) if m]
    assert planned, out.stdout
    # Lock-step with maxSkew 25% over 4 + 4 pods: no planned step leaves them further apart.
    assert all(int(m[4]) <= 25 for m in planned), out.stdout
    assert sum(int(m[3]) for m in planned) == 8
    live = await kube.get(f"{rbgs(namespace)}/{NAME}")
    assert live["metadata"]["generation"] == 1  # planning changed nothing

    gen = await change(kube, namespace, set_engine_image(NEW))
    await wait_ready(kube, namespace, NAME, generation=gen, timeout=120)
    state = await settled(temporal_env, cluster_id, namespace, gen)
    (upgrade,) = [op for op in state.recent if op.kind == "upgrade"]
    assert await step_summaries(temporal_env, upgrade.workflow_id) == [(int(m[1]), m[2]) for m in planned]


async def test_plan_of_a_placed_group_names_the_domains_it_then_lands_in(
    sim: SimCluster, kube: Any, orchestrator: Any, temporal_address: str, namespace: str, tmp_path: Path
) -> None:
    await until_gpus_free(kube, settled=True)
    body = group("planned", {"policy": "Required", "level": "rdma"}, (1, 4), (1, 2))
    path = manifest(tmp_path, body)
    plan = ["plan", "-f", str(path), "--worker-namespace", WORKER_NAMESPACE]

    out = cli(sim, temporal_address, namespace, *plan)
    assert out.returncode == 0, out.stderr
    assert "create: roles by dependency level" in out.stdout, out.stdout
    (line,) = [ln.strip() for ln in out.stdout.splitlines() if ln.strip().startswith("placement: ")]
    assert line.startswith("placement: placed at rdma"), out.stdout
    assert await kube.get_or_none(f"{rbgs(namespace)}/planned") is None  # planning changed nothing

    await create_rbg(kube, namespace, body)
    rbg = await wait_ready(kube, namespace, "planned", generation=1, timeout=120)
    assert line == f"placement: {rbg['status']['placement']['message']}"
    # Asked again once it runs, the plan keeps the group where it is (its own grant counts as its own).
    again = cli(sim, temporal_address, namespace, *plan)
    assert again.returncode == 0, again.stderr
    assert "nothing the workloads are built from changed" in again.stdout, again.stdout
    (kept,) = [ln.strip() for ln in again.stdout.splitlines() if ln.strip().startswith("placement: ")]
    assert kept == line


async def test_plan_refuses_a_bad_manifest_by_field_and_an_unplaceable_group_with_the_shortfall(
    sim: SimCluster, orchestrator: Any, temporal_address: str, namespace: str, tmp_path: Path
) -> None:
    bad = example("coordinated-upgrade.yaml")
    bad["spec"]["roles"][0]["dependencies"] = ["nowhere"]
    out = cli(sim, temporal_address, namespace, "plan", "-f", str(manifest(tmp_path, bad)))
    assert out.returncode == 1
    assert "refused: spec.roles[0].dependencies" in out.stdout and "nowhere" in out.stdout, out.stdout

    huge = group("huge", {"policy": "Required", "level": "nvlink"}, (1, 64), (1, 1))
    out = cli(
        sim,
        temporal_address,
        namespace,
        "plan",
        "-f",
        str(manifest(tmp_path, huge)),
        "--worker-namespace",
        WORKER_NAMESPACE,
    )
    assert out.returncode == 1
    shortfall = (
        r"placement: decode\+prefill needs 65 GPUs in one nvlink-domain; the best nvlink-domain has \d+ free"
    )
    assert re.search(shortfall, out.stdout), out.stdout
