"""The pure pieces of waits on a failing watch: backoff, the failure's wording, heartbeat details, and how
long a wait may sleep before it is due to give up."""

from __future__ import annotations

from rbg_flows.activities.wait import sleep_bound, watch_details, watch_failed
from rbg_flows.kube.cache import WatchFailure
from rbg_flows.kube.informer import backoff

FAILURE = WatchFailure("StatefulSet", "500 InternalError: etcd is down", 12.34)


def test_backoff_grows_then_stays_at_five_seconds() -> None:
    delays = [backoff(n) for n in range(1, 10)]
    assert delays == sorted(delays)
    assert delays[0] == 0.2 and delays[-1] == 5.0


def test_the_failure_names_the_kind_how_long_and_why() -> None:
    assert (
        str(FAILURE) == "the watch of StatefulSet has been failing for 12 s: 500 InternalError: etcd is down"
    )


def test_heartbeat_details_say_nothing_while_the_watch_works() -> None:
    assert watch_details(None) == {}
    assert watch_details(FAILURE) == {
        "watch_error": "StatefulSet: 500 InternalError: etcd is down",
        "since_s": 12.3,
    }


def test_the_attempt_fails_retryably_with_the_reason() -> None:
    err = watch_failed(FAILURE)
    assert err.type == "WatchFailing" and not err.non_retryable
    assert err.message == str(FAILURE)
    assert err.details == (watch_details(FAILURE),)


def test_a_wait_on_a_failing_watch_wakes_when_it_is_due_to_give_up() -> None:
    assert sleep_bound(None, 30.0, 3.0) == 3.0
    assert sleep_bound(FAILURE, 30.0, 3.0) == 3.0
    assert sleep_bound(FAILURE, 13.0, 3.0) == 13.0 - 12.34
    assert sleep_bound(FAILURE, 10.0, 3.0) == 0.01  # past due: at once, not never


def test_the_fault_proxy_answers_gone_as_an_expired_resource_version() -> None:
    from rbg_flows.sim.faultproxy import FaultRule, classify, fault_status

    info = classify("GET", "/apis/apps/v1/statefulsets", {"watch": "true", "resourceVersion": "7"})
    code, body, _ = fault_status(FaultRule(verb="watch", fraction=1.0, action="gone"), info)
    assert (code, body["code"], body["reason"]) == (410, 410, "Expired")
