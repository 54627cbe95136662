"""What a step's SpecRef resolves to: the live group when it is still the version the operation is for."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import check_ref, model_of
from rbg_flows.manifests.workloads import build_workload
from rbg_flows.messages import RbgKey, RoleRequest, SpecRef, StepRequest, spec_event

EXAMPLE = Path(__file__).parents[2] / "examples" / "pd-disaggregation.yaml"


def _live(generation: int = 3, uid: str = "u-1") -> dict[str, Any]:
    obj: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    obj["metadata"].update(namespace="ns", uid=uid, generation=generation, resourceVersion="42")
    obj["metadata"]["annotations"] = {
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
        "rbg-flows.workloads.x-k8s.io/seen": "3",
        "team": "infra",
    }
    obj["status"] = {"observedGeneration": generation - 1}
    return obj


def _ref(generation: int = 3, uid: str = "u-1") -> SpecRef:
    return SpecRef(key=RbgKey(cluster="c1", namespace="ns", name="pd-demo"), uid=uid, generation=generation)


def test_the_version_named_resolves_to_what_the_watcher_reported() -> None:
    live = _live()
    event = spec_event(copy.deepcopy(live))  # what the operation's input carries
    resolved = check_ref(_ref(), spec_event(live))
    assert resolved == event
    a, b = model_of(resolved), model_of(event)
    for role in a.spec.roles:
        assert build_workload(a, role) == build_workload(b, b.spec.role(role.name))


def test_a_newer_generation_is_retried_until_the_newer_operation_takes_over() -> None:
    with pytest.raises(ApplicationError) as e:
        check_ref(_ref(3), spec_event(_live(4)))
    assert e.value.type == "Superseded" and not e.value.non_retryable
    assert e.value.message == (
        "the group is at generation 4, this operation is for 3: waiting for the newer operation to take over"
    )


def test_an_older_generation_is_retried() -> None:
    with pytest.raises(ApplicationError) as e:
        check_ref(_ref(3), spec_event(_live(2)))
    assert not e.value.non_retryable


@pytest.mark.parametrize(
    ("live", "message"),
    [
        (None, "the RoleBasedGroup was deleted"),
        (spec_event(_live(uid="u-2")), "the RoleBasedGroup was replaced"),
    ],
)
def test_a_group_deleted_or_replaced_is_final(live: Any, message: str) -> None:
    with pytest.raises(ApplicationError) as e:
        check_ref(_ref(), live)
    assert e.value.non_retryable and e.value.message == message


def test_step_inputs_carry_no_spec() -> None:
    ref = _ref()
    step = StepRequest(ref=ref, role="prefill", replicas=2, partition=1, want=1)
    assert step.key == ref.key and "spec" not in step.model_dump_json()
    assert len(RoleRequest(ref=ref, role="prefill").model_dump_json()) < 200
