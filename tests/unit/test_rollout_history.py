"""What `history` and `diff` print, from ControllerRevision objects as the API returns them."""

from __future__ import annotations

from typing import Any

from rbg_flows.cli.control import bar, render_status
from rbg_flows.messages import GroupState, OperationRecord, RbgKey, RoleProgress
from rbg_flows.rollout.history import change_summary, format_history, history_rows, revision_diff


def revision(number: int, images: dict[str, str], **extra: Any) -> dict[str, Any]:
    roles = [
        {"name": role, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}
        for role, image in images.items()
    ]
    return {
        "metadata": {"name": f"g-{number}", "creationTimestamp": f"2026-11-28T00:0{number}:00Z"},
        "revision": number,
        "data": {"spec": {"roles": roles, **extra}},
    }


R1 = revision(1, {"prefill": "e:1", "decode": "e:1"})
R2 = revision(2, {"prefill": "e:2", "decode": "e:2"})
R3 = revision(3, {"prefill": "e:2", "decode": "e:2", "router": "r:1"})
R4 = revision(4, {"prefill": "e:2", "router": "r:1"}, rolloutOrder=["router"])


def test_change_summary_names_changed_added_and_removed_roles() -> None:
    assert change_summary(None, R1) == "initial"
    assert change_summary(None, R2) == "oldest kept"
    assert change_summary(R1, R2) == "changed: prefill, decode"
    assert change_summary(R2, R3) == "added: router"
    assert change_summary(R3, R4) == "removed: decode"
    assert change_summary(
        R3, revision(5, {"prefill": "e:2", "decode": "e:2", "router": "r:1"}, rolloutOrder=["x"])
    ) == ("group settings only (no role changed)")


def test_history_is_ordered_by_revision_and_marks_the_current_one() -> None:
    rows = history_rows([R3, R1, R2], current="g-2")
    assert [(r.revision, r.current) for r in rows] == [(1, False), (2, True), (3, False)]
    text = format_history(rows).splitlines()
    assert text[0].split() == ["REVISION", "NAME", "CREATED", "CHANGE"]
    assert text[2].startswith("2*") and text[2].endswith("changed: prefill, decode")


def test_diff_shows_only_what_changed_and_nothing_for_equal_revisions() -> None:
    out = revision_diff(R1, R2)
    assert out.startswith("--- revision 1 (g-1)\n+++ revision 2 (g-2)\n")
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert changed == [
        "-        - image: e:1",
        "+        - image: e:2",
        "-        - image: e:1",
        "+        - image: e:2",
    ]
    assert revision_diff(R2, R2) == ""


def test_status_prefers_live_progress_over_the_written_status() -> None:
    obj = {
        "metadata": {"namespace": "ns", "name": "g", "generation": 3},
        "spec": {"roles": [{"name": "prefill"}, {"name": "decode"}]},
        "status": {
            "phase": "Upgrading",
            "observedGeneration": 2,
            "roleStatuses": [
                {"name": "prefill", "replicas": 4, "readyReplicas": 4, "updatedReplicas": 0},
                {"name": "decode", "replicas": 4, "readyReplicas": 3, "updatedReplicas": 1},
            ],
            "conditions": [{"type": "RollingUpdateInProgress", "status": "True", "reason": "RollingUpdate"}],
        },
    }
    state = GroupState(
        key=RbgKey(namespace="ns", name="g"),
        paused=True,
        current=OperationRecord(workflow_id="rbg.ns.g.upgrade.3", kind="upgrade", generation=3),
    )
    live = {"prefill": RoleProgress(role="prefill", replicas=4, ready=2, updated=2, done=False)}
    text = render_status(obj, state, live)
    assert "phase: Upgrading" in text and "operation: upgrade of generation 3" in text and "PAUSED" in text
    prefill = next(line for line in text.splitlines() if line.startswith("prefill"))
    decode = next(line for line in text.splitlines() if line.startswith("decode"))
    assert "2/4" in prefill and f"[{bar(2, 4)}]" in prefill
    assert "3/4" in decode and f"[{bar(1, 4)}]" in decode
    assert bar(0, 0) == "#" * 20 and bar(1, 4, width=4) == "#..."
