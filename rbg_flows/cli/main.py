"""`rbg-flows`: the command-line entry point."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


@dataclass(frozen=True)
class Commands:
    """Subcommands whose parsers one module registers (`module:function`). The module is imported only
    when one of them runs: the control verbs load the workflows, `sim` and `dev` the Kubernetes client,
    and a watcher process must load neither. The helps here are what `rbg-flows --help` shows; a unit test
    keeps them equal to the modules' own."""

    registrar: str
    helps: dict[str, str]

    def load(self) -> Registrar:
        module, function = self.registrar.split(":")
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not e.name.startswith("rbg_flows.sim"):
                raise
            # The production image ships without the sim.
            raise SystemExit("the sim is not installed here (it is not part of the production image)") from e
        registrar: Registrar = getattr(loaded, function)
        return registrar


COMMANDS = (
    Commands(
        "rbg_flows.sim.cli:add_parser",
        {"sim": "the local cluster: a real control plane with simulated GPU nodes"},
    ),
    Commands(
        "rbg_flows.cli.processes:add_parsers",
        {
            "worker": "run the Temporal worker (workflows and activities)",
            "watcher": "run the kopf watcher that signals the workflows",
        },
    ),
    Commands("rbg_flows.cli.dev:add_parser", {"dev": "run everything locally"}),
    Commands(
        "rbg_flows.cli.webhook:add_parsers",
        {
            "webhook": "run the CRD conversion webhook (HTTPS, POST /convert)",
            "webhook-certs": "create the webhook's serving certificate Secret and put its CA in the CRDs "
            "(no cert-manager)",
        },
    ),
    Commands(
        "rbg_flows.cli.plan:add_parser",
        {"plan": "what applying a manifest would do (operation, steps, placement), changing nothing"},
    ),
    Commands(
        "rbg_flows.cli.codec_server:add_parser",
        {"codec-server": "serve /encode and /decode for the Temporal UI and CLI"},
    ),
    Commands(
        "rbg_flows.cli.control:add_parsers",
        {
            "status": "phase, revisions, conditions and per-role progress of a group",
            "history": "the group's revisions with a change summary",
            "diff": "unified diff of the role specs of two revisions",
            "rollback": "roll the group back to a revision (keeps current replicas)",
            "pause": "hold the rollout before its next step",
            "resume": "let a paused rollout go on",
            "abort": "stop the upgrade in flight and return to the revision before it",
        },
    ),
)


def parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, complete for `command` (its module imported); every other subcommand is a stub that
    only names itself, so building it imports nothing heavy."""
    p = argparse.ArgumentParser(prog="rbg-flows", description=__doc__)
    p.add_argument("--log-level", default="info")
    sub = p.add_subparsers(dest="cmd", required=True)
    for commands in COMMANDS:
        if command in commands.helps:
            commands.load()(sub)
            continue
        for name, help in commands.helps.items():
            stub = sub.add_parser(name, help=help, add_help=False)
            stub.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # First pass with stubs finds the subcommand (and answers `--help`); the second parses it fully.
    command = parser().parse_known_args(argv)[0].cmd
    args = parser(command).parse_args(argv)
    from rbg_flows.cli import logs

    logs.configure(args.log_level)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
