"""The watcher process stays lean: neither the CLI's parser nor the watcher's code loads the worker's
Kubernetes client, workflows, activities or manifest builders."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from rbg_flows.cli.main import COMMANDS, parser

FORBIDDEN = (
    "kubernetes_asyncio",
    "rbg_flows.kube",
    "rbg_flows.manifests",
    "rbg_flows.activities",
    "rbg_flows.workflows",
    "rbg_flows.rollout",
)

PROBE = """
import json, sys
import rbg_flows.cli.main
from rbg_flows.cli.main import parser
parser()
parser("watcher").parse_args(["watcher", "--namespace=a"])
import rbg_flows.watcher.run
after_import = sorted(m for m, v in sys.modules.items() if v is not None)
rbg_flows.watcher.run.load()  # what the process imports before it starts: kopf and the handlers
after_load = sorted(m for m, v in sys.modules.items() if v is not None)
print(json.dumps({"import": after_import, "load": after_load}))
"""


def _loaded() -> dict[str, list[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    result: dict[str, list[str]] = json.loads(out.stdout)
    return result


def _forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


def test_the_watcher_loads_none_of_the_workers_code() -> None:
    loaded = _loaded()
    assert _forbidden(loaded["import"]) == []
    assert "kopf" not in loaded["import"]  # kopf too waits for the process to start
    assert _forbidden(loaded["load"]) == []
    assert {"kopf", "kubernetes", "rbg_flows.watcher.handlers"} <= set(loaded["load"])


def _subcommands(p: argparse.ArgumentParser) -> dict[str, str]:
    action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return {c.dest: str(c.help) for c in action._choices_actions}


def test_the_stub_helps_are_the_commands_own() -> None:
    stubs = _subcommands(parser())
    for commands in COMMANDS:
        real = argparse.ArgumentParser()
        commands.load()(real.add_subparsers())
        assert _subcommands(real) == commands.helps
        assert {k: stubs[k] for k in commands.helps} == commands.helps


def test_each_command_parses_with_its_real_flags() -> None:
    args = parser("watcher").parse_args(["watcher", "-n", "a", "--resync-every=0"])
    assert args.namespace == ["a"] and args.resync_every == 0 and args.func.__name__ == "run_watcher"
    args = parser("rollback").parse_args(["rollback", "g", "--to-revision=1"])
    assert args.name == "g"
