"""LWS webhook configurations rewritten to reach the controller by URL (pure)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from rbg_flows.sim.lws import webhook_configurations

SAMPLE = """\
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: mutating-webhook-configuration
webhooks:
- admissionReviewVersions: [v1]
  clientConfig:
    service:
      name: webhook-service
      namespace: system
      path: /mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset
  failurePolicy: Fail
  name: mleaderworkerset.kb.io
  rules:
  - {apiGroups: [leaderworkerset.x-k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE],
     resources: [leaderworkersets]}
  sideEffects: None
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /mutate--v1-pod}
  failurePolicy: Fail
  name: mpod.kb.io
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  sideEffects: None
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: validating-webhook-configuration
webhooks:
- admissionReviewVersions: [v1]
  clientConfig:
    service:
      name: webhook-service
      namespace: system
      path: /validate-leaderworkerset-x-k8s-io-v1-leaderworkerset
  failurePolicy: Fail
  name: vleaderworkerset.kb.io
  rules:
  - {apiGroups: [leaderworkerset.x-k8s.io], apiVersions: [v1], operations: [CREATE, UPDATE],
     resources: [leaderworkersets]}
  sideEffects: None
- admissionReviewVersions: [v1]
  clientConfig:
    service: {name: webhook-service, namespace: system, path: /validate--v1-pod}
  failurePolicy: Fail
  name: vpod.kb.io
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [pods]}
  sideEffects: None
"""


def _real_manifests() -> list[Path]:
    return sorted((Path.home() / ".cache" / "rbg-flows").glob("lws-*/webhooks.yaml"))


def _sources() -> list[Any]:
    real = _real_manifests()
    params = [pytest.param(SAMPLE, id="inline-sample")]
    if real:
        params.append(pytest.param(real[-1].read_text(), id=f"real-{real[-1].parent.name}"))
    return params


BASE = "https://127.0.0.1:45678"
CA = b"-----BEGIN CERTIFICATE-----\nMIIB...fake\n-----END CERTIFICATE-----\n"


def _hooks(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [h for d in docs for h in d["webhooks"]]


@pytest.mark.parametrize("manifests", _sources())
def test_webhook_configurations(manifests: str) -> None:
    originals = [d for d in yaml.safe_load_all(manifests) if d]
    docs = webhook_configurations(manifests, BASE, CA)
    assert len(docs) == len(originals) >= 2
    assert {d["kind"] for d in docs} == {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
    for doc, orig in zip(docs, originals, strict=True):
        assert doc["metadata"]["name"] == "lws-" + orig["metadata"]["name"]
        assert [h["name"] for h in doc["webhooks"]] == [h["name"] for h in orig["webhooks"]]
        for hook, o in zip(doc["webhooks"], orig["webhooks"], strict=True):
            path = o["clientConfig"]["service"]["path"]
            assert hook["clientConfig"] == {"url": BASE + path, "caBundle": hook["clientConfig"]["caBundle"]}
            assert base64.b64decode(hook["clientConfig"]["caBundle"]) == CA
            assert "service" not in hook["clientConfig"]
            assert hook["rules"] == o["rules"] and hook["failurePolicy"] == o["failurePolicy"]
            assert hook["timeoutSeconds"] == 10
            if any("pods" in r["resources"] for r in o["rules"]):
                assert hook["objectSelector"] == {
                    "matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]
                }
            else:
                assert "objectSelector" not in hook
    pod_hooks = [h for h in _hooks(docs) if "objectSelector" in h]
    assert len(pod_hooks) >= 2  # a mutating and a validating pod webhook
    assert all(h["clientConfig"]["url"].endswith("-v1-pod") for h in pod_hooks)


def test_existing_timeout_is_kept_and_empty_documents_skipped() -> None:
    docs = list(yaml.safe_load_all(SAMPLE))
    docs[0]["webhooks"][1]["timeoutSeconds"] = 3
    text = "---\n" + "\n---\n".join(yaml.safe_dump(d) for d in docs) + "\n---\n"
    out = webhook_configurations(text, BASE, CA)
    assert len(out) == 2
    assert [h["timeoutSeconds"] for h in _hooks(out)] == [10, 3, 10, 10]


def test_each_call_uses_its_own_base_and_ca() -> None:
    a = webhook_configurations(SAMPLE, BASE, CA)
    b = webhook_configurations(SAMPLE, "https://127.0.0.1:1", b"other")
    assert base64.b64decode(_hooks(b)[0]["clientConfig"]["caBundle"]) == b"other"
    assert a[0]["metadata"]["name"] == b[0]["metadata"]["name"] == "lws-mutating-webhook-configuration"
    assert _hooks(b)[0]["clientConfig"]["url"].startswith("https://127.0.0.1:1/")
    assert _hooks(a)[0]["clientConfig"]["url"].startswith(BASE + "/")
