"""API requests counted from recorded audit log lines (a bench/deploy.py run's, at Metadata level): each
request once by auditID, clients told apart by User-Agent, chosen by window and namespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench._audit import agents, client_of, parse, select, tally

# Recorded lines; the 8th repeats the kopf watch's auditID at ResponseComplete (as the watch ends) and the
# last is cut short, as the tail of a log still being written is.
LINES = (Path(__file__).parent / "bench_audit.jsonl").read_text().splitlines()
T0 = 1796175262.0  # 2026-12-02T01:34:22Z


def test_each_request_is_counted_once_and_a_cut_line_is_skipped() -> None:
    requests = parse(LINES)
    assert len(LINES) == 9
    assert [(r.client, r.verb, r.resource, r.namespace) for r in requests] == [
        ("worker", "patch", "configmaps", "bench-ovh-79b18c"),
        ("kube-apiserver", "patch", "servicecidrs/status", ""),
        ("floor", "patch", "configmaps", "floor-fc48cb"),
        ("worker", "watch", "statefulsets", ""),
        ("watcher", "watch", "customresourcedefinitions", ""),
        ("watcher", "get", "namespaces", "kube-system"),
        ("kube-controller-manager", "update", "statefulsets/status", "bench-ovh-79b18c"),
    ]
    assert requests[0].code == 201
    assert requests[0].received == pytest.approx(T0 + 7.321271)


def test_user_agents_name_their_process() -> None:
    assert client_of("rbg-flows/0.1.0 (worker)") == "worker"
    assert client_of("rbg-flows/0.1.0 (sim)") == "sim"
    assert client_of("rbg-flows/0.1.0") == "rbg-flows"
    assert client_of("rbg-flows-bench/floor") == "floor"
    assert client_of("rbg-flows-bench") == "bench"
    assert client_of("kopf/1.45.2") == "watcher"
    assert client_of("") == "unknown"
    assert agents(LINES)["OpenAPI-Generator/37.0.2/python"] == "watcher"
    assert agents(LINES)["rbg-flows/0.1.0 (worker)"] == "worker"


def test_requests_are_chosen_by_client_window_and_namespace() -> None:
    requests = parse(LINES)
    ours = select(
        requests,
        clients=("worker", "watcher"),
        windows=[(T0 + 7.0, T0 + 8.0)],
        namespaces={"bench-ovh-79b18c"}.__contains__,
    )
    assert [r.verb for r in ours] == ["patch"]  # the controller-manager's update is not ours
    wide = select(
        requests, clients=("worker", "watcher"), windows=[(T0, T0 + 10)], namespaces=lambda n: not n
    )
    assert [(r.client, r.verb) for r in wide] == [("worker", "watch"), ("watcher", "watch")]
    assert select(requests, clients=("worker",), windows=[(T0 + 7.5, T0 + 7.6)], namespaces=bool) == []


def test_tally_divides_by_groups() -> None:
    requests = [r for r in parse(LINES) if r.client in ("worker", "watcher")]
    assert tally(requests, per=2) == {
        "total": 2.0,
        "by_verb": {"get": 0.5, "patch": 0.5, "watch": 1.0},
        "by_client_verb": {
            "watcher get": 0.5,
            "watcher watch": 0.5,
            "worker patch": 0.5,
            "worker watch": 0.5,
        },
        "by_verb_resource": {
            "get namespaces": 0.5,
            "patch configmaps": 0.5,
            "watch customresourcedefinitions": 0.5,
            "watch statefulsets": 0.5,
        },
    }
