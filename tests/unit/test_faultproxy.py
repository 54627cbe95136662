"""The API fault proxy: request classification and rule matching (pure), then the proxy itself in
front of a small TLS upstream that plays the API server's request-header authentication."""

from __future__ import annotations

import asyncio
import json
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError
from yarl import URL

from rbg_flows.sim.faultproxy import (
    FaultInjector,
    FaultProxy,
    FaultProxyControl,
    FaultRule,
    RequestInfo,
    classify,
    fault_status,
    forward_request_headers,
    identity_from_peercert,
)
from rbg_flows.sim.pki import ClusterPki, issue, make_ca

# ---------------------------------------------------------------------------------------------
# classify


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/ns/pods/p1", "", RequestInfo("get", "pods", None, "ns", "p1")),
        ("GET", "/api/v1/namespaces/ns/pods", "", RequestInfo("list", "pods", None, "ns", None)),
        ("GET", "/api/v1/namespaces/ns/pods", "watch=true", RequestInfo("watch", "pods", None, "ns", None)),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            "watch=1&resourceVersion=5",
            RequestInfo("watch", "pods", None, "ns", None),
        ),
        ("GET", "/api/v1/namespaces/ns/pods", "watch=false", RequestInfo("list", "pods", None, "ns", None)),
        ("GET", "/api/v1/pods", "watch=true", RequestInfo("watch", "pods", None, None, None)),
        ("GET", "/api/v1/watch/namespaces/ns/pods", "", RequestInfo("watch", "pods", None, "ns", None)),
        (
            "GET",
            "/api/v1/namespaces/ns/pods",
            "watch=true&fieldSelector=metadata.name%3Dp1",
            RequestInfo("watch", "pods", None, "ns", "p1"),
        ),
        (
            "PUT",
            "/api/v1/namespaces/ns/pods/p1/status",
            "",
            RequestInfo("update", "pods", "status", "ns", "p1"),
        ),
        (
            "PATCH",
            "/api/v1/namespaces/ns/pods/p1/status",
            "",
            RequestInfo("patch", "pods", "status", "ns", "p1"),
        ),
        (
            "POST",
            "/api/v1/namespaces/ns/pods/p1/eviction",
            "",
            RequestInfo("create", "pods", "eviction", "ns", "p1"),
        ),
        (
            "POST",
            "/apis/apps/v1/namespaces/ns/statefulsets",
            "",
            RequestInfo("create", "statefulsets", None, "ns", None, group="apps"),
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/ns/statefulsets/s",
            "",
            RequestInfo("delete", "statefulsets", None, "ns", "s", group="apps"),
        ),
        (
            "DELETE",
            "/apis/apps/v1/namespaces/ns/statefulsets",
            "labelSelector=a%3Db",
            RequestInfo("deletecollection", "statefulsets", None, "ns", None, group="apps"),
        ),
        (
            "GET",
            "/apis/leaderworkerset.x-k8s.io/v1/namespaces/ns/leaderworkersets/l",
            "",
            RequestInfo("get", "leaderworkersets", None, "ns", "l", group="leaderworkerset.x-k8s.io"),
        ),
        ("GET", "/api/v1/nodes/x", "", RequestInfo("get", "nodes", None, None, "x")),
        ("PATCH", "/api/v1/nodes/x/status", "", RequestInfo("patch", "nodes", "status", None, "x")),
        ("GET", "/api/v1/nodes", "", RequestInfo("list", "nodes", None, None, None)),
        ("GET", "/api/v1/namespaces", "", RequestInfo("list", "namespaces", None, None, None)),
        ("GET", "/api/v1/namespaces/ns", "", RequestInfo("get", "namespaces", None, "ns", "ns")),
        (
            "PUT",
            "/api/v1/namespaces/ns/finalize",
            "",
            RequestInfo("update", "namespaces", "finalize", "ns", "ns"),
        ),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l",
            "",
            RequestInfo("get", "leases", None, "kube-system", "l", group="coordination.k8s.io"),
        ),
    ],
)
def test_classify_resource_requests(method: str, path: str, query: str, expected: RequestInfo) -> None:
    assert classify(method, path, query) == expected


def test_classify_takes_a_parsed_query() -> None:
    assert classify("GET", "/api/v1/namespaces/ns/pods", {"watch": "true"}).verb == "watch"
    assert classify("GET", "/api/v1/namespaces/ns/pods", {"limit": "500"}).verb == "list"


@pytest.mark.parametrize(
    "path",
    ["/healthz", "/version", "/api", "/api/v1", "/apis", "/apis/apps", "/apis/apps/v1", "/openapi/v2", "/"],
)
def test_classify_non_resource(path: str) -> None:
    info = classify("GET", path, "")
    assert not info.is_resource_request
    assert info.verb == "get"


# ---------------------------------------------------------------------------------------------
# rules


POD = RequestInfo("get", "pods", None, "ns", "p")
POD_STATUS = RequestInfo("patch", "pods", "status", "ns", "p")
STS = RequestInfo("create", "statefulsets", None, "other", None, group="apps")
NODE = RequestInfo("get", "nodes", None, None, "n")
DISCOVERY = classify("GET", "/apis/apps/v1", "")


def rule(**kw: Any) -> FaultRule:
    kw.setdefault("fraction", 1.0)
    kw.setdefault("action", "error")
    return FaultRule(**kw)


@pytest.mark.parametrize(
    ("kw", "info", "expected"),
    [
        ({}, POD, True),
        ({}, POD_STATUS, True),
        ({}, DISCOVERY, False),
        ({"resource": "pods"}, POD, True),
        ({"resource": "pods"}, POD_STATUS, False),
        ({"resource": "pods/status"}, POD_STATUS, True),
        ({"resource": "pods/status"}, POD, False),
        ({"resource": "pods/*"}, POD_STATUS, True),
        ({"resource": "pods/*"}, POD, False),
        ({"resource": "*/status"}, POD_STATUS, True),
        ({"resource": "statefulsets"}, POD, False),
        ({"resource": "statefulsets"}, STS, True),
        ({"verb": "get"}, POD, True),
        ({"verb": "create"}, POD, False),
        ({"verb": "create", "resource": "statefulsets"}, STS, True),
        ({"namespace": "ns"}, POD, True),
        ({"namespace": "ns"}, STS, False),
        ({"namespace": "ns"}, NODE, False),
        ({"resource": "nodes"}, NODE, True),
    ],
)
def test_rule_matches(kw: dict[str, Any], info: RequestInfo, expected: bool) -> None:
    assert rule(**kw).matches(info) is expected


@pytest.mark.parametrize(
    "kw",
    [
        {"fraction": 0.0},
        {"fraction": 1.5},
        {"verb": "GET"},
        {"verb": "frobnicate"},
        {"resource": ""},
        {"resource": "pods/status/x"},
        {"action": "explode"},
        {"count": 0},
        {"bogus": 1},
    ],
)
def test_rule_validation(kw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        rule(**kw)


def test_injector_count_first_match_and_counters() -> None:
    inj = FaultInjector([rule(resource="pods", action="conflict", count=2), rule(action="throttle")])
    picks = [inj.choose(POD) for _ in range(3)]
    assert [p.action if p else None for p in picks] == ["conflict", "conflict", "throttle"]
    assert inj.choose(DISCOVERY) is None
    assert inj.injected == {"conflict": 2, "throttle": 1, "error": 0, "hang": 0, "gone": 0}
    assert inj.fired() == [2, 1]
    inj.set_rules([rule(resource="pods", action="conflict", count=1)])  # replacing resets per-rule counts
    assert inj.choose(POD) is not None
    assert inj.choose(POD) is None


def test_injector_fraction_is_deterministic_with_a_seed() -> None:
    def draws(seed: int) -> list[bool]:
        inj = FaultInjector([rule(fraction=0.3)], rng=random.Random(seed))
        return [inj.choose(POD) is not None for _ in range(200)]

    a = draws(7)
    assert a == draws(7)
    assert 30 < sum(a) < 90


def test_fault_status_bodies() -> None:
    code, body, headers = fault_status(rule(action="throttle", retry_after_seconds=3), POD)
    assert (code, headers["Retry-After"], body["reason"], body["code"]) == (429, "3", "TooManyRequests", 429)
    code, body, _ = fault_status(rule(action="conflict"), STS)
    assert (code, body["reason"], body["kind"], body["status"]) == (409, "Conflict", "Status", "Failure")
    assert "statefulsets.apps" in body["message"]
    code, body, _ = fault_status(rule(action="error"), POD)
    assert (code, body["reason"]) == (500, "InternalError")


def test_identity_and_header_stripping() -> None:
    cert = {
        "subject": (
            (("organizationName", "devs"),),
            (("organizationName", "ops"),),
            (("commonName", "alice"),),
        )
    }
    assert identity_from_peercert(cert) == ("alice", ("devs", "ops"))
    assert identity_from_peercert({}) is None
    assert identity_from_peercert(None) is None
    assert identity_from_peercert({"subject": ((("organizationName", "devs"),),)}) is None
    from multidict import CIMultiDict

    out = forward_request_headers(
        CIMultiDict(
            [
                ("X-Remote-User", "root"),
                ("x-remote-group", "system:masters"),
                ("X-Remote-Extra-Foo", "1"),
                ("Connection", "keep-alive, X-Private"),
                ("X-Private", "1"),
                ("Host", "h"),
                ("Accept", "a"),
                ("Transfer-Encoding", "chunked"),
                ("Impersonate-User", "bob"),
            ]
        )
    )
    assert sorted(out.keys()) == ["Accept", "Impersonate-User"]


# ---------------------------------------------------------------------------------------------
# the proxy, in front of a TLS upstream


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


@pytest.fixture
def pki(tmp_path: Path) -> ClusterPki:
    pki = ClusterPki(tmp_path)
    ca = make_ca("test-ca")
    fp_ca = make_ca("test-front-proxy-ca")
    _write(pki.ca, ca.cert_pem)
    _write(pki.front_proxy_ca, fp_ca.cert_pem)
    for stem, pair in (
        ("apiserver", issue(ca, "kube-apiserver", server=True, ips=("127.0.0.1",))),
        ("front-proxy-client", issue(fp_ca, "front-proxy-client", client=True)),
        ("alice", issue(ca, "alice", organizations=("devs",), client=True)),
    ):
        _write(pki.cert(stem), pair.cert_pem)
        _write(pki.key(stem), pair.key_pem)
    return pki


@dataclass
class Upstream:
    url: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    second_chunk: asyncio.Event = field(default_factory=asyncio.Event)
    watch_ended: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def upstream(pki: ClusterPki) -> AsyncIterator[Upstream]:
    """Plays the API server: trusts X-Remote-* only from a front-proxy-CA certificate, as
    request-header authentication does, and echoes what it saw."""
    state = Upstream(url="")

    async def handler(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        peer = identity_from_peercert(request.transport.get_extra_info("peercert"))
        state.seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "peer": peer.user if peer else None,
                "user": request.headers.getall("X-Remote-User", []),
                "groups": request.headers.getall("X-Remote-Group", []),
                "authorization": request.headers.get("Authorization"),
                "body": (await request.read()).decode(),
            }
        )
        if request.query.get("watch") in ("true", "1"):
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            try:
                await resp.write(b'{"type":"ADDED","object":{"n":1}}\n')
                await state.second_chunk.wait()
                await resp.write(b'{"type":"MODIFIED","object":{"n":2}}\n')
                await asyncio.sleep(3600)
            finally:
                state.watch_ended.set()
        if request.path.endswith("/pb"):
            return web.Response(
                body=b"k8s\x00\x01\x02",
                content_type="application/vnd.kubernetes.protobuf",
                headers={"Audit-Id": "abc"},
            )
        return web.json_response(state.seen[-1], status=201 if request.method == "POST" else 200)

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.front_proxy_ca))
    ctx.load_cert_chain(str(pki.cert("apiserver")), str(pki.key("apiserver")))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    state.url = f"https://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


@pytest.fixture
async def proxy(pki: ClusterPki, upstream: Upstream) -> AsyncIterator[FaultProxy]:
    p = FaultProxy.from_pki(upstream.url, pki, rng=random.Random(1))
    await p.start()
    yield p
    await p.stop()


def _client(pki: ClusterPki, cert: str | None) -> aiohttp.ClientSession:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if cert:
        ctx.load_cert_chain(str(pki.cert(cert)), str(pki.key(cert)))
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=ctx), timeout=aiohttp.ClientTimeout(total=10)
    )


async def test_forwards_with_cert_identity(pki: ClusterPki, upstream: Upstream, proxy: FaultProxy) -> None:
    async with _client(pki, "alice") as client:
        headers = {
            "X-Remote-User": "system:admin",
            "X-Remote-Group": "system:masters",
            "Authorization": "Bearer stolen",
        }
        path = "/api/v1/namespaces/default/pods?labelSelector=app%3Dx%2Cy+in+%28a%29&limit=5"
        # encoded=True: yarl would otherwise normalise the query before it even reaches the proxy.
        async with client.get(URL(proxy.url + path, encoded=True), headers=headers) as resp:
            assert resp.status == 200
            seen = await resp.json()
        assert seen["raw_path"] == path
        assert seen["peer"] == "front-proxy-client"
        assert seen["user"] == ["alice"]
        assert seen["groups"] == ["devs"]
        assert seen["authorization"] is None

        async with client.post(
            proxy.url + "/apis/apps/v1/namespaces/default/statefulsets",
            data=b'{"kind":"StatefulSet"}',
            headers={"Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 201
            assert (await resp.json())["body"] == '{"kind":"StatefulSet"}'

        async with client.get(
            proxy.url + "/api/v1/namespaces/default/configmaps/pb",
            headers={"Accept": "application/vnd.kubernetes.protobuf"},
        ) as resp:
            assert resp.headers["Content-Type"] == "application/vnd.kubernetes.protobuf"
            assert resp.headers["Audit-Id"] == "abc"
            assert await resp.read() == b"k8s\x00\x01\x02"

        async with client.get(
            proxy.url + "/api/v1/namespaces/default/pods/p/exec",
            headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1"},
        ) as resp:
            assert resp.status == 501

    async with _client(pki, None) as client:
        async with client.get(
            proxy.url + "/api/v1/nodes", headers={"Authorization": "Bearer tok", "X-Remote-User": "root"}
        ) as resp:
            seen = await resp.json()
        assert (seen["peer"], seen["user"], seen["authorization"]) == (None, [], "Bearer tok")


async def test_watch_streams_and_is_cut(pki: ClusterPki, upstream: Upstream, proxy: FaultProxy) -> None:
    async with (
        _client(pki, "alice") as client,
        client.get(proxy.url + "/api/v1/namespaces/default/pods?watch=true&resourceVersion=1") as resp,
    ):
        assert resp.status == 200
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        # The first event arrives while the upstream still holds back the second: nothing is buffered.
        first = await asyncio.wait_for(resp.content.readline(), 5)
        assert json.loads(first)["type"] == "ADDED"
        upstream.second_chunk.set()
        second = await asyncio.wait_for(resp.content.readline(), 5)
        assert json.loads(second)["type"] == "MODIFIED"
        assert proxy.stats()["active_watches"] == 1

        assert await proxy.cut_watches() == 1
        # A clean end of stream, as when the API server drops a watch, not a connection error.
        assert await asyncio.wait_for(resp.content.read(), 5) == b""
    await asyncio.wait_for(upstream.watch_ended.wait(), 5)  # the upstream watch was released
    stats = proxy.stats()
    assert (stats["active_watches"], stats["watches_cut"]) == (0, 1)
    assert await proxy.cut_watches() == 0


async def test_throttle_and_control(pki: ClusterPki, upstream: Upstream, proxy: FaultProxy) -> None:
    proxy.set_rules(
        [FaultRule(resource="pods", verb="list", fraction=1.0, action="throttle", retry_after_seconds=2)]
    )
    async with _client(pki, "alice") as client:
        async with client.get(proxy.url + "/api/v1/namespaces/default/pods") as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "2"
            body = await resp.json()
        assert body["kind"] == "Status" and body["reason"] == "TooManyRequests" and body["code"] == 429
        assert upstream.seen == []  # answered by the proxy alone

        control = FaultProxyControl(proxy.control_url)
        await control.set_rules(
            [FaultRule(verb="create", resource="statefulsets", fraction=1.0, action="conflict", count=1)]
        )
        assert [r.action for r in await control.rules()] == ["conflict"]
        url = proxy.url + "/apis/apps/v1/namespaces/default/statefulsets"
        async with client.post(url, json={}) as resp:
            assert resp.status == 409
            assert (await resp.json())["reason"] == "Conflict"
        async with client.post(url, json={}) as resp:  # count=1: the second one goes through
            assert resp.status == 201
        async with client.get(proxy.url + "/api/v1/namespaces/default/pods") as resp:
            assert resp.status == 200  # the throttle rule was replaced

        await control.set_rules([FaultRule(fraction=1.0, action="hang", hang_seconds=0.1)])
        # A POST: aiohttp retries an idempotent request once when the connection drops, which
        # would count a second hang.
        with pytest.raises(aiohttp.ServerDisconnectedError):
            async with client.post(proxy.url + "/api/v1/namespaces/default/pods", json={}) as resp:
                await resp.read()
        await control.clear()
        assert await control.rules() == []

        stats = await control.stats()
        assert stats["injected"] == {"conflict": 1, "throttle": 1, "error": 0, "hang": 1, "gone": 0}
        assert stats["requests"] == 5
        assert await control.cut_watches() == 0

        async with (
            aiohttp.ClientSession() as plain,
            plain.post(proxy.control_url + "/rules", json=[{"action": "explode", "fraction": 1}]) as resp,
        ):
            assert resp.status == 400
