"""What the security review of docs/security.md holds the code to, checked on every run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
# The one process that writes a Secret (the webhook's serving certificate, `rbg-flows webhook-certs`,
# its own Job and account), and the local cluster.
MAY_TOUCH_SECRETS = {"rbg_flows/cli/webhook_certs.py"}


def test_the_orchestrator_never_asks_for_a_secret() -> None:
    """No code the worker, watcher or CLI run names the Secrets API: no Secret value can reach a workflow
    history, a log line or an Event through the orchestrator (a spec carries secretKeyRefs, not values)."""
    offenders = []
    for path in sorted((ROOT / "rbg_flows").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("rbg_flows/sim/") or rel in MAY_TOUCH_SECRETS:
            continue
        text = path.read_text()
        if '"secrets"' in text or "/secrets/" in text.replace("/var/run/secrets/", ""):
            offenders.append(rel)
    assert offenders == []


def rules(path: Path) -> list[dict[str, Any]]:
    return [
        rule
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] in ("ClusterRole", "Role")
        for rule in doc.get("rules") or []
    ]


def test_neither_the_worker_nor_the_watcher_may_read_secrets() -> None:
    for name in ("worker.yaml", "watcher.yaml"):
        granted = rules(ROOT / "deploy" / "base" / "rbac" / name)
        assert granted
        assert not [r for r in granted if "secrets" in r.get("resources", [])], name
