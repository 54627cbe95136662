"""Which entity workflows a resync tells that their RoleBasedGroup is gone (pure)."""

from __future__ import annotations

from rbg_flows.watcher.cluster import _split_authorization
from rbg_flows.watcher.resync import (
    Deletion,
    ExistingGroup,
    RunningEntity,
    _identity,
    literal_namespaces,
    namespace_selected,
    stale_entities,
    unserved_groups,
    visibility_query,
)


def entity(ns: str, name: str, uid: str) -> RunningEntity:
    return RunningEntity(f"rbg.c1.{ns}.{name}", ns, name, uid)


def test_an_entity_whose_group_exists_with_its_uid_is_left_alone() -> None:
    assert stale_entities([entity("a", "g", "u1")], [ExistingGroup("a", "g", "u1")]) == []


def test_an_entity_whose_group_is_gone_is_told_with_its_own_uid() -> None:
    assert stale_entities([entity("a", "g", "u1")], []) == [Deletion("rbg.c1.a.g", "u1")]


def test_a_group_created_again_under_the_name_gets_the_old_uid_signalled() -> None:
    # The entity compares uids: deleted("u1") ends an entity still on u1 and is ignored by one that has
    # already taken up u2.
    assert stale_entities([entity("a", "g", "u1")], [ExistingGroup("a", "g", "u2")]) == [
        Deletion("rbg.c1.a.g", "u1")
    ]


def test_a_namesake_in_another_namespace_does_not_keep_an_entity_alive() -> None:
    running = [entity("a", "g", "u1"), entity("b", "g", "u2")]
    assert stale_entities(running, [ExistingGroup("b", "g", "u2")]) == [Deletion("rbg.c1.a.g", "u1")]


def test_groups_without_an_entity_are_not_the_resyncs_business() -> None:
    assert stale_entities([], [ExistingGroup("a", "g", "u1")]) == []


def test_namespace_patterns_follow_kopf() -> None:
    assert namespace_selected("anything", [])
    assert namespace_selected("t-abc", ["t-*"]) and not namespace_selected("iso-1", ["t-*"])
    assert namespace_selected("b", ["a", "b"]) and not namespace_selected("c", ["a", "b"])
    assert not namespace_selected("t-skip", ["t-*", "!t-skip"])
    assert not namespace_selected("kube-system", ["!kube-*"]) and namespace_selected("x", ["!kube-*"])


def test_only_plain_names_narrow_the_queries() -> None:
    assert literal_namespaces([]) is None
    assert literal_namespaces(["t-*"]) is None
    assert literal_namespaces(["b", "a", "b"]) == ["a", "b"]


def test_the_visibility_query_selects_this_orchestrators_running_entities() -> None:
    q = visibility_query("rbg-flows", [])
    assert q == (
        'WorkflowType = "RoleBasedGroup" AND ExecutionStatus = \'Running\' AND TaskQueue = "rbg-flows"'
    )
    assert visibility_query("q", ["b", "a"]).endswith(' AND RbgNamespace IN ("a", "b")')
    assert "RbgNamespace" not in visibility_query("q", ["t-*"])  # globs are filtered afterwards
    assert visibility_query('odd"queue', []).endswith('TaskQueue = "odd\\"queue"')
    # Another cluster's entities on the same Temporal are not this one's to end.
    assert visibility_query("q", ["a"], "c1").endswith(' AND RbgCluster = "c1" AND RbgNamespace IN ("a")')


def test_identity_comes_from_the_search_attributes_else_the_workflow_id() -> None:
    assert _identity("rbg.c1.a.g", "a", "g") == ("a", "g")
    assert _identity("rbg.c1.ns.name.with.dots", None, None) == ("ns", "name.with.dots")
    assert _identity("something-else", None, None) is None


def test_the_authorization_header_is_split_into_scheme_and_token() -> None:
    assert _split_authorization("Bearer abc") == ("Bearer", "abc")
    assert _split_authorization("abc") == (None, "abc")
    assert _split_authorization(None) == (None, None)


def test_a_group_no_entity_serves_is_signalled() -> None:
    running = [entity("a", "served", "u1"), entity("a", "recreated", "old")]
    existing = [
        ExistingGroup("a", "served", "u1"),
        ExistingGroup("a", "recreated", "new"),
        ExistingGroup("b", "missed", "u3"),
    ]
    assert unserved_groups(running, existing) == [
        ExistingGroup("a", "recreated", "new"),
        ExistingGroup("b", "missed", "u3"),
    ]
    assert unserved_groups(running, existing[:1]) == []
