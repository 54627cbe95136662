"""`kubectl-rbg`: the rbg-flows controls as a kubectl plugin (install the package; kubectl finds the
`kubectl-rbg` executable on PATH).

    kubectl rbg status NAME [-n NS] [--watch]
    kubectl rbg plan -f FILE [-n NS]
    kubectl rbg rollout history NAME
    kubectl rbg rollout diff NAME --revision N [--to-revision M]
    kubectl rbg rollout undo NAME [--to-revision N]
    kubectl rbg rollout pause|resume|abort NAME
"""

from __future__ import annotations

import argparse
import sys

from rbg_flows.cli import control, logs, plan

# kubectl's rollout verbs -> ours
ROLLOUT_VERBS = {
    "history": "history",
    "diff": "diff",
    "undo": "rollback",
    "pause": "pause",
    "resume": "resume",
    "abort": "abort",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubectl rbg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    control.add_verb(sub, "status")
    plan.add_parser(sub)
    verbs = sub.add_parser("rollout", help="history, diff, undo, pause, resume, abort").add_subparsers(
        dest="verb", required=True
    )
    for kubectl_verb, verb in ROLLOUT_VERBS.items():
        control.add_verb(verbs, verb, as_name=kubectl_verb)
    return p


def main(argv: list[str] | None = None) -> int:
    logs.configure("warning")
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
