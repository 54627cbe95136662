"""The plan preview (pure): which operation a manifest makes of the live group, and an upgrade's steps as
the Upgrade operation plans them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.api import RoleBasedGroup, parse_rbg
from rbg_flows.api.conversion import internal_form
from rbg_flows.rollout.planner import plan_all
from rbg_flows.rollout.preview import preview
from rbg_flows.rollout.steps import step_text, unit_state

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMAGE = "lmsysorg/sglang:v9"


def load(name: str, version: str = "") -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / version / name).read_text())
    return doc


def parsed(doc: dict[str, Any]) -> RoleBasedGroup:
    rbg, problems = parse_rbg(doc)
    assert rbg is not None and not problems, problems
    return rbg


def with_image(doc: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    templates = out["spec"].get("roleTemplates")
    if templates:
        templates[0]["template"]["spec"]["containers"][0]["image"] = IMAGE
    else:
        out["spec"]["roles"][0]["template"]["spec"]["containers"][0]["image"] = IMAGE
    return out


@pytest.mark.parametrize("version", ["", "v1alpha2"])
def test_the_operation_follows_what_changed(version: str) -> None:
    doc = load("coordinated-upgrade.yaml", version)
    live = internal_form(doc)
    assert preview(parsed(doc), doc, None).operation == "create"
    assert preview(parsed(doc), doc, live).operation == "deploy"  # the same manifest again
    bigger = copy.deepcopy(doc)
    bigger["spec"]["roles"][0]["replicas"] += 2
    scaled = preview(parsed(bigger), bigger, live)
    assert scaled.operation == "scale" and "prefill 4→6" in scaled.text()
    changed = with_image(doc)
    assert preview(parsed(changed), changed, live).operation == "upgrade"


def test_an_upgrade_lists_the_planner_s_steps_with_their_pods_and_skew() -> None:
    doc = load("coordinated-upgrade.yaml")
    changed = with_image(doc)
    rbg = parsed(changed)
    plan = preview(rbg, changed, internal_form(doc))
    [[unit]] = plan.units
    assert set(unit.roles) == {"prefill", "decode"}  # one lock-step unit
    expected = plan_all(unit_state(rbg.spec, unit.roles, {}, {}))
    assert [s.text for s in unit.steps] == [step_text(s) for s in expected]
    assert [s.pods for s in unit.steps] == [s.pods for s in expected]
    assert sum(s.pods for s in unit.steps) == 8  # every pod of both roles moves once
    # The example's rule keeps the two roles within 25% of each other at every step.
    assert all(0 <= s.skew <= 0.25 for s in unit.steps)
    assert plan.lines[-1] == f"  {len(unit.steps)} steps"
    assert "step 1: " in plan.text() and "skew" in plan.text()


def test_a_gang_scheduled_group_deploys_as_one_level() -> None:
    doc = load("dependency-chain.yaml")
    plain = preview(parsed(doc), doc, None).lines[0]
    gang = copy.deepcopy(doc)
    gang["spec"]["podGroupPolicy"] = {"kubeScheduling": {}}
    together = preview(parsed(gang), gang, None).lines[0]
    assert plain.count("[") > 2  # several levels without a gang
    assert together.count("[") == 2  # one level: [[every role]]


@pytest.mark.parametrize("version", ["", "v1alpha2"])
def test_a_coordinated_scale_lists_the_steps_the_scale_takes(version: str) -> None:
    doc = load("coordinated-scaling.yaml", version)
    bigger = copy.deepcopy(doc)
    bigger["spec"]["roles"][0]["replicas"] = 6
    bigger["spec"]["roles"][1]["replicas"] = 3
    plan = preview(parsed(bigger), bigger, internal_form(doc))
    assert plan.operation == "scale"
    lines = plan.text().splitlines()
    assert lines[0] == "scale: prefill 1→6, decode 1→3"
    steps = [ln.strip() for ln in lines if ln.strip().startswith("scale step ")]
    assert steps == [
        "scale step 1: prefill 1→2, decode 1→2",
        "scale step 2: prefill 2→5",
        "scale step 3: decode 2→3",
        "scale step 4: prefill 5→6",
    ]
