"""The conversion webhook's own logic, with a stand-in converter (the real conversion is tested on its own,
and on the sim through the API server): ConversionReview answers, refusals, metrics, and the serving
certificate reloaded from its files over real TLS connections."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509

from rbg_flows.observability.metrics import REGISTRY
from rbg_flows.pki import KeyPair, issue, make_ca
from rbg_flows.webhook.review import InvalidReview, describe, review
from rbg_flows.webhook.server import CONVERT_PATH, conversion_app
from rbg_flows.webhook.tls import ReloadingCertificate

V1, V2 = "workloads.x-k8s.io/v1alpha1", "workloads.x-k8s.io/v1alpha2"


class StandInError(ValueError):
    pass


def stand_in(obj: dict[str, Any], to: str) -> dict[str, Any]:
    """Renames spec.old to spec.new between the versions; refuses objects with spec.bad."""
    if "bad" in obj.get("spec", {}):
        raise StandInError("spec.bad: no such field in " + to)
    spec = dict(obj.get("spec", {}))
    if to == V2 and "old" in spec:
        spec["new"] = spec.pop("old")
    return {**obj, "apiVersion": to, "spec": spec}


def group(name: str, version: str = V1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": version,
        "kind": "RoleBasedGroup",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": spec,
    }


def conversion_review(objects: list[Any], desired: str = V2, uid: str = "u-1") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "ConversionReview",
        "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects},
    }


def sample(name: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(name, labels)
    return value or 0.0


# -- review (pure) -------------------------------------------------------------------------------
def test_every_object_is_converted_in_order_and_the_uid_is_echoed() -> None:
    out = review(
        conversion_review([group("a", old=1), group("b", V2, new=2)], uid="abc"), stand_in, (StandInError,)
    )
    assert out.ok
    response = out.response["response"]
    assert out.response["apiVersion"] == "apiextensions.k8s.io/v1"
    assert out.response["kind"] == "ConversionReview"
    assert response["uid"] == "abc" and response["result"] == {"status": "Success"}
    assert [o["metadata"]["name"] for o in response["convertedObjects"]] == ["a", "b"]
    assert [o["apiVersion"] for o in response["convertedObjects"]] == [V2, V2]
    assert response["convertedObjects"][0]["spec"] == {"new": 1}
    assert [(o.from_version, o.to_version, o.ok) for o in out.outcomes] == [(V1, V2, True), (V2, V2, True)]


def test_an_unconvertible_object_fails_the_whole_review_naming_it_and_the_field() -> None:
    out = review(
        conversion_review([group("a"), group("broken", bad=1), group("c")]), stand_in, (StandInError,)
    )
    response = out.response["response"]
    assert "convertedObjects" not in response
    assert response["result"]["status"] == "Failure"
    message = response["result"]["message"]
    assert "RoleBasedGroup default/broken" in message and "spec.bad" in message and V2 in message
    # Conversion stops at the first failure: c was never tried.
    assert [o.ok for o in out.outcomes] == [True, False]


def test_a_converter_bug_is_a_failure_of_the_review_not_of_the_server() -> None:
    def buggy(obj: dict[str, Any], to: str) -> dict[str, Any]:
        raise KeyError("roles")

    out = review(conversion_review([group("a")]), buggy, (StandInError,))
    assert out.response["response"]["result"]["status"] == "Failure"
    assert "internal error" in (out.failure or "") and "KeyError" in (out.failure or "")


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"apiVersion": "apiextensions.k8s.io/v1beta1", "kind": "ConversionReview", "request": {"uid": "x"}},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview"},
        {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview", "request": {"uid": ""}},
    ],
)
def test_a_body_without_a_request_to_answer_is_invalid(body: Any) -> None:
    with pytest.raises(InvalidReview):
        review(body, stand_in, (StandInError,))


@pytest.mark.parametrize(
    ("desired", "objects", "expected"),
    [
        ("v1alpha2", [], "desiredAPIVersion"),
        (V2, {"not": "a list"}, "request.objects"),
        (V2, ["a string"], "request.objects[0]"),
    ],
)
def test_a_malformed_request_is_answered_with_a_failure(desired: str, objects: Any, expected: str) -> None:
    out = review(conversion_review(objects, desired), stand_in, (StandInError,))
    assert out.response["response"]["uid"] == "u-1"
    assert expected in out.response["response"]["result"]["message"]


def test_describe_names_namespaced_and_cluster_scoped_objects() -> None:
    assert describe(group("pd")) == "RoleBasedGroup default/pd"
    assert describe({"kind": "ClusterEngineRuntimeProfile", "metadata": {"name": "sglang"}}) == (
        "ClusterEngineRuntimeProfile sglang"
    )
    assert describe({}) == "<no kind> <unnamed>"


# -- the HTTP side ---------------------------------------------------------------------------------
async def _client(max_request_bytes: int = 1 << 20) -> TestClient[web.Request, web.Application]:
    app = conversion_app(stand_in, (StandInError,), max_request_bytes=max_request_bytes)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_post_convert_answers_and_counts_by_kind_version_and_result() -> None:
    labels = {"kind": "RoleBasedGroup", "from_version": V1, "to_version": V2}
    before_ok = sample("rbg_flows_webhook_conversions_total", **labels, result="success")
    before_fail = sample("rbg_flows_webhook_conversions_total", **labels, result="failure")
    before_reviews = sample("rbg_flows_webhook_review_duration_seconds_count", result="success")
    client = await _client()
    try:
        ok = await client.post(CONVERT_PATH, json=conversion_review([group("a"), group("b")]))
        assert ok.status == 200
        assert (await ok.json())["response"]["result"] == {"status": "Success"}
        failed = await client.post(CONVERT_PATH, json=conversion_review([group("x", bad=1)]))
        # A refused conversion is still a 200: the result carries the failure for the API server.
        assert failed.status == 200
        assert (await failed.json())["response"]["result"]["status"] == "Failure"
    finally:
        await client.close()
    assert sample("rbg_flows_webhook_conversions_total", **labels, result="success") == before_ok + 2
    assert sample("rbg_flows_webhook_conversions_total", **labels, result="failure") == before_fail + 1
    assert sample("rbg_flows_webhook_review_duration_seconds_count", result="success") == before_reviews + 1


async def test_a_review_beyond_the_size_limit_is_refused_with_413_and_a_clear_message() -> None:
    before = sample("rbg_flows_webhook_review_duration_seconds_count", result="refused")
    client = await _client(max_request_bytes=10_000)
    try:
        many = conversion_review([group(f"g{i}", old="x" * 100) for i in range(200)])
        resp = await client.post(CONVERT_PATH, json=many)
        assert resp.status == 413
        assert "larger than 10000 bytes" in (await resp.json())["message"]
        # Chunked, without a Content-Length: refused while reading.

        async def chunks() -> Any:
            body = json.dumps(many).encode()
            for i in range(0, len(body), 4096):
                yield body[i : i + 4096]

        resp = await client.post(CONVERT_PATH, data=chunks())
        assert resp.status == 413
        small = await client.post(CONVERT_PATH, json=conversion_review([group("one")]))
        assert small.status == 200
    finally:
        await client.close()
    assert sample("rbg_flows_webhook_review_duration_seconds_count", result="refused") == before + 2


async def test_a_body_that_is_not_a_review_is_a_400() -> None:
    client = await _client()
    try:
        resp = await client.post(CONVERT_PATH, data=b"{not json")
        assert resp.status == 400 and "not JSON" in (await resp.json())["message"]
        resp = await client.post(CONVERT_PATH, json={"kind": "AdmissionReview"})
        assert resp.status == 400 and "ConversionReview" in (await resp.json())["message"]
    finally:
        await client.close()


# -- the serving certificate, reloaded ---------------------------------------------------------------
def _write(pair: KeyPair, cert: Path, key: Path) -> None:
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)


def _served_serial(port: int, ca: Path) -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
        ctx.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return x509.load_der_x509_certificate(der).serial_number


def _serial(pair: KeyPair) -> int:
    return x509.load_pem_x509_certificate(pair.cert_pem).serial_number


async def test_a_renewed_certificate_is_served_to_new_connections_without_a_restart(tmp_path: Path) -> None:
    ca = make_ca("test-ca")
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first, second = (issue(ca, "webhook", server=True, ips=("127.0.0.1",)) for _ in range(2))
    _write(first, cert, key)
    reloads = sample("rbg_flows_webhook_certificate_reloads_total", result="loaded")
    failures = sample("rbg_flows_webhook_certificate_reloads_total", result="failed")
    certificate = ReloadingCertificate(cert, key)
    runner = web.AppRunner(conversion_app(stand_in, (StandInError,)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=certificate.context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        assert await asyncio.to_thread(_served_serial, port, tmp_path / "ca.crt") == _serial(first)
        # Half a renewal: the new certificate without its key is refused, the old pair still served.
        cert.write_bytes(second.cert_pem)
        assert certificate.reload() is False
        assert await asyncio.to_thread(_served_serial, port, tmp_path / "ca.crt") == _serial(first)
        key.write_bytes(second.key_pem)
        watcher = asyncio.create_task(certificate.watch(every=0.05))
        await asyncio.sleep(0.3)
        watcher.cancel()
        assert await asyncio.to_thread(_served_serial, port, tmp_path / "ca.crt") == _serial(second)
    finally:
        await runner.cleanup()
    assert sample("rbg_flows_webhook_certificate_reloads_total", result="loaded") == reloads + 1
    assert sample("rbg_flows_webhook_certificate_reloads_total", result="failed") >= failures + 1
    expiry = x509.load_pem_x509_certificate(second.cert_pem).not_valid_after_utc.timestamp()
    assert sample("rbg_flows_webhook_certificate_expiry_timestamp_seconds") == expiry


def test_a_start_without_a_usable_certificate_fails(tmp_path: Path) -> None:
    with pytest.raises(ssl.SSLError):
        ReloadingCertificate(tmp_path / "missing.crt", tmp_path / "missing.key")


# -- the process stays lean ---------------------------------------------------------------------
LEAN_PROBE = """
import json, sys
from rbg_flows.cli.main import parser
args = parser("webhook").parse_args(["webhook", "--cert-file=c", "--key-file=k"])
import rbg_flows.webhook.run
print(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))
"""


def test_the_webhook_process_loads_no_kube_client_temporal_or_workflow_code() -> None:
    out = subprocess.run([sys.executable, "-c", LEAN_PROBE], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout)
    forbidden = ("temporalio", "kubernetes", "kubernetes_asyncio", "kopf", "rbg_flows.kube", "rbg_flows.sim")
    assert [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)] == []
    assert {"rbg_flows.api.conversion", "rbg_flows.webhook.server"} <= set(loaded)
