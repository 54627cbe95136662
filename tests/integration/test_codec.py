"""Payload privacy end to end: the real worker and watcher with a codec key deploy the PD example; its
history, read without the key, holds only encrypted payloads (the image is nowhere in the stored bytes),
and the codec server turns them back into the readable JSON the Temporal UI would show."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from rbg_flows.codec import ENCODING, KEY_ID, key_id
from rbg_flows.kube.client import KubeClient
from rbg_flows.messages import DEPLOY_WORKFLOW
from rbg_flows.sim.procs import ManagedProcess, free_port
from rbg_flows.temporal import temporal_binary

from .conftest import SimCluster, scratch_namespace
from .orchestrator import Orchestrator
from .rbg_helpers import create_rbg, example, wait_ready

pytestmark = pytest.mark.sim

IMAGE = b"lmsysorg/sglang"
# Temporal never passes these through the codec: the server indexes search attributes, and headers are
# left alone by default (they carry no group data here).
UNCODED_FIELDS = {"search_attributes", "header"}
# The SDK's own bookkeeping beside a local activity's (coded) result: sequence number, type, times.
LOCAL_ACTIVITY_MARKER_DATA = "data"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "codec.keys"
    path.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
async def codec_namespace(kube: KubeClient) -> AsyncIterator[str]:
    async with scratch_namespace(kube, f"codec-{uuid.uuid4().hex[:8]}") as name:
        yield name


@pytest.fixture
def codec_orchestrator(
    sim: SimCluster,
    temporal_address: str,
    crds: list[str],
    codec_namespace: str,
    key_file: Path,
    tmp_path: Path,
) -> Iterator[Orchestrator]:
    flags = [f"--codec-key-file={key_file}"]
    orch = Orchestrator(
        temporal_address,
        sim.direct_kubeconfig,
        f"codec-{codec_namespace}",
        tmp_path,
        [codec_namespace],
        worker_args=flags,
        watcher_args=flags,
    ).start()
    yield orch
    orch.stop()


@pytest.fixture
async def codec_server(key_file: Path, tmp_path: Path) -> AsyncIterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        "codec-server",
        [
            sys.executable,
            "-m",
            "rbg_flows.cli",
            "codec-server",
            f"--codec-key-file={key_file}",
            f"--port={port}",
        ],
        tmp_path / "codec-server.log",
        env=dict(os.environ),
    )
    proc.start()
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 60
            while True:
                try:
                    async with http.post(f"{url}/decode", json={"payloads": []}) as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert proc.alive(), f"codec server exited:\n{proc.tail(30)}"
                assert time.monotonic() < deadline, f"codec server not answering:\n{proc.tail(30)}"
                await asyncio.sleep(0.2)
        yield url
    finally:
        proc.stop()


def payloads_in(msg: Message) -> Iterator[Payload]:
    """Every Payload a history event holds, wherever it is nested (except the fields never coded)."""
    if isinstance(msg, Payload):
        yield msg
        return
    for fd, value in msg.ListFields():
        if fd.message_type is None or fd.name in UNCODED_FIELDS:
            continue
        if fd.message_type.GetOptions().map_entry:
            if fd.message_type.fields_by_name["value"].message_type is None:
                continue
            marker = msg.DESCRIPTOR.name == "MarkerRecordedEventAttributes"
            values: Any = [v for k, v in value.items() if not (marker and k == LOCAL_ACTIVITY_MARKER_DATA)]
        else:
            values = [value] if isinstance(value, Message) else value
        for v in values:
            yield from payloads_in(v)


def payload_data(doc: Any) -> bytes:
    """The data of every payload in a protobuf-JSON document (base64 there), concatenated."""
    if isinstance(doc, list):
        return b"".join(payload_data(v) for v in doc)
    if not isinstance(doc, dict):
        return b""
    own = base64.b64decode(doc["data"]) if isinstance(doc.get("data"), str) and "metadata" in doc else b""
    return own + b"".join(payload_data(v) for v in doc.values())


async def raw_history(client: Client, workflow_id: str) -> tuple[list[Any], bytes]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return list(history.events), b"".join(e.SerializeToString() for e in history.events)


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbg_flows.cli", *args], capture_output=True, text=True, env=env, timeout=180
    )


async def test_histories_are_encrypted_and_readable_through_the_codec_server(
    sim: SimCluster,
    kube: KubeClient,
    temporal_env: Any,
    temporal_address: str,
    codec_orchestrator: Orchestrator,
    codec_namespace: str,
    codec_server: str,
    key_file: Path,
) -> None:
    ns = codec_namespace
    await create_rbg(kube, ns, example("pd-disaggregation.yaml"))
    rbg = await wait_ready(kube, ns, "pd-demo", generation=1, timeout=240)
    entity_id = rbg["status"]["workflowId"]

    # A client with no codec (the test environment's): what Temporal stores, as stored.
    client: Client = temporal_env.client
    events, raw = await raw_history(client, entity_id)
    [deploy_id] = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        and e.start_child_workflow_execution_initiated_event_attributes.workflow_type.name == DEPLOY_WORKFLOW
    ]
    deploy_events, deploy_raw = await raw_history(client, deploy_id)

    current = key_id(base64.b64decode(await asyncio.to_thread(key_file.read_text)))
    encrypted: list[Payload] = []
    for name, evs, stored in (("entity", events, raw), ("deploy", deploy_events, deploy_raw)):
        payloads = [p for e in evs for p in payloads_in(e)]
        assert payloads, f"no payloads in the {name} history"
        clear = [p for p in payloads if p.metadata.get("encoding") != ENCODING]
        assert not clear, f"{name} history holds payloads in clear: {clear[:3]}"
        assert {p.metadata[KEY_ID].decode() for p in payloads} == {current}
        assert IMAGE not in stored, f"the image string is in the stored {name} history"
        encrypted += payloads

    # The codec server (what the Temporal UI calls) gives readable JSON back, the image in it.
    async with aiohttp.ClientSession() as http:
        body = json_format.MessageToJson(Payloads(payloads=encrypted))
        async with http.post(
            f"{codec_server}/decode", data=body, headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 200, await r.text()
            decoded = json_format.Parse(await r.text(), Payloads()).payloads
    assert len(decoded) == len(encrypted)
    assert all(p.metadata.get("encoding") != ENCODING for p in decoded)
    with_image = [p for p in decoded if IMAGE in p.data]
    assert with_image, "no decoded payload holds the group's image"
    assert all(p.metadata["encoding"] == b"json/plain" for p in with_image)
    assert "lmsysorg/sglang:v0.5.4" in json.dumps(json.loads(with_image[0].data))

    # Temporal's own client speaks the same protocol: the CLI shows the history readable through the
    # codec endpoint (what `--ui-codec-endpoint` makes the UI do), and encrypted without it.
    show = [
        temporal_binary() or "temporal",
        "workflow",
        "show",
        "-w",
        deploy_id,
        "--address",
        temporal_address,
    ]
    shown = await asyncio.to_thread(
        subprocess.run,
        [*show, f"--codec-endpoint={codec_server}", "--output=json"],
        capture_output=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert IMAGE in payload_data(json.loads(shown.stdout))
    hidden = await asyncio.to_thread(
        subprocess.run, [*show, "--output=json"], capture_output=True, timeout=120
    )
    assert hidden.returncode == 0, hidden.stderr
    assert IMAGE not in payload_data(json.loads(hidden.stdout))

    # The CLI reads the entity's queries with the key, and says what is missing without it.
    env = {k: v for k, v in os.environ.items() if k not in {"RBG_CODEC_KEY", "RBG_CODEC_KEY_FILE"}} | {
        "KUBECONFIG": str(sim.direct_kubeconfig),
        "RBG_TEMPORAL_ADDRESS": temporal_address,
    }
    ok = await asyncio.to_thread(
        run_cli, "status", "pd-demo", "-n", ns, "--once", env={**env, "RBG_CODEC_KEY_FILE": str(key_file)}
    )
    assert ok.returncode == 0, ok.stderr
    assert "pd-demo" in ok.stdout and "prefill" in ok.stdout
    refused = await asyncio.to_thread(run_cli, "status", "pd-demo", "-n", ns, "--once", env=env)
    assert refused.returncode == 1, (refused.stdout, refused.stderr)
    assert "encrypted" in refused.stderr and "no key is configured" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr
