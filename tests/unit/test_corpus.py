"""Every manifest of the malformed corpus is refused by validation where and as its header says."""

from __future__ import annotations

import pytest

from rbg_flows.api import parse_rbg
from tests.corpus import Case, cases

CASES = cases()


def test_the_corpus_covers_what_the_issue_lists() -> None:
    files = {c.file for c in CASES}
    assert {
        "replicas-int32-max.yaml",
        "replicas-over-ceiling.yaml",
        "long-group-pod-names.yaml",
        "long-role-label-key.yaml",
        "cpu-lots.yaml",
        "dependency-cycle.yaml",
        "unknown-dependency.yaml",
        "duplicate-roles.yaml",
        "lws-size-zero.yaml",
        "lws-size-huge.yaml",
        "negative-replicas.yaml",
        "invalid-group-name.yaml",
        # and the chaos issue's list: bad templateRef, coordination rules, workload kinds, unicode,
        # conflicting fields, schema violations
        "template-ref-unknown.yaml",
        "coordination-unknown-role.yaml",
        "coordination-maxskew-over-100.yaml",
        "unsupported-workload-kind.yaml",
        "unicode-role-name.yaml",
        "template-and-template-ref.yaml",
        "unknown-restart-policy.yaml",
        "missing-roles.yaml",
    } <= files
    assert len(files) >= 40
    # Every kind of refusal is represented.
    assert {c.expect for c in CASES} == {"validation", "admission", "operation"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.file)
def test_corpus_case(case: Case) -> None:
    _, errors = parse_rbg(case.manifest)
    if case.expect == "operation":
        assert errors == []  # only the API server can tell
        return
    assert errors, f"{case.file} was not refused"
    if case.expect == "validation":
        assert any(e.path == case.path and case.message in e.message for e in errors), errors
    else:
        assert any(e.path.startswith(case.path) for e in errors), errors
