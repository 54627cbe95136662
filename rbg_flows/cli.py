"""`rbg-flows`: the command-line entry point."""

from __future__ import annotations

import argparse
import sys

from rbg_flows import control, dev, logs, processes
from rbg_flows.sim import cli as sim_cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rbg-flows", description=__doc__)
    p.add_argument("--log-level", default="info")
    sub = p.add_subparsers(dest="cmd", required=True)
    sim_cli.add_parser(sub)
    processes.add_parsers(sub)
    dev.add_parser(sub)
    control.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_level)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
