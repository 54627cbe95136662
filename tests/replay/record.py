"""Record workflow histories for the replay tests:

    python -m tests.replay.record --address 127.0.0.1:7233 WORKFLOW_ID [WORKFLOW_ID ...]

or all of them from a fresh live run: tests/replay/record_scenarios.sh

Writes histories/<WorkflowType>__<label>.json; commit them with the change that produced them.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import Runtime

from rbg_flows.temporal import connect, run_with_runtime

OUT = Path(__file__).parent / "histories"


async def record(client: Client, workflow_id: str, label: str) -> Path:
    handle = client.get_workflow_handle(workflow_id)
    desc = await handle.describe()
    history = await handle.fetch_history()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{desc.workflow_type}__{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}.json"
    path.write_text(history.to_json())
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", default="127.0.0.1:7233")
    ap.add_argument("--label", default="")
    ap.add_argument("workflow_ids", nargs="+")
    args = ap.parse_args()

    async def run(runtime: Runtime) -> None:
        client = await connect(args.address, "default", runtime)
        for wid in args.workflow_ids:
            print(await record(client, wid, f"{args.label}{wid}"))

    run_with_runtime(run)


if __name__ == "__main__":
    main()
