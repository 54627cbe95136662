"""Where a process runs: the namespace of its pod, for the objects it keeps for itself (the watcher's
Lease, the worker's placement ledger)."""

from __future__ import annotations

import os
from pathlib import Path

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FALLBACK_NAMESPACE = "default"


def default_namespace(env: dict[str, str] | None = None, sa_file: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The pod's own namespace (POD_NAMESPACE, else the service account's namespace file every pod
    has), else `default` (a process run outside a cluster)."""
    env = dict(os.environ) if env is None else env
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        return sa_file.read_text().strip() or FALLBACK_NAMESPACE
    except OSError:
        return FALLBACK_NAMESPACE
