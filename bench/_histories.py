"""What the Temporal server recorded for groups: every run of each group's entity and operation workflows
(found by their search attributes, so runs before a continue-as-new are included), counted as billable
actions and history events (bench/_actions.py)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from temporalio.client import Client

from bench._actions import add, billable_actions, event_counts
from rbg_flows.messages import ENTITY_WORKFLOW, RBG_NAME, RBG_NAMESPACE


async def _history(client: Client, workflow_id: str, run_id: str | None) -> list[dict[str, Any]]:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    events: list[dict[str, Any]] = history.to_json_dict().get("events", [])
    return events


async def group_costs(client: Client, namespace: str, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per group of `namespace`: its operations (operation workflows, one per operation), and the billable
    actions and history events of all its runs, in total and by workflow type."""
    wanted = set(names)
    runs: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    async for wf in client.list_workflows(f'{RBG_NAMESPACE.name} = "{namespace}"'):
        name = wf.typed_search_attributes.get(RBG_NAME)
        if name in wanted:
            runs[name].append((wf.workflow_type, wf.id, wf.run_id))
    gate = asyncio.Semaphore(16)

    async def one(wf_type: str, wf_id: str, run_id: str | None) -> tuple[str, str, list[dict[str, Any]]]:
        async with gate:
            return wf_type, wf_id, await _history(client, wf_id, run_id)

    out: dict[str, dict[str, Any]] = {}
    for name in sorted(wanted):
        histories = await asyncio.gather(*(one(*r) for r in runs.get(name, [])))
        if not any(t == ENTITY_WORKFLOW for t, _, _ in histories):
            raise RuntimeError(f"no entity workflow recorded for {namespace}/{name}")
        by_type: dict[str, list[dict[str, int]]] = defaultdict(list)
        events: list[dict[str, int]] = []
        for wf_type, _, evs in histories:
            by_type[wf_type].append(billable_actions(evs))
            events.append(event_counts(evs))
        out[name] = {
            "operations": len({i for t, i, _ in histories if t != ENTITY_WORKFLOW}),
            "runs": len(histories),
            "actions": add(a for acts in by_type.values() for a in acts),
            "actions_by_workflow": {t: add(acts) for t, acts in sorted(by_type.items())},
            "events": add(events),
        }
    return out


def per_operation(costs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The groups' costs summed, divided by their number of operations."""
    ops = sum(c["operations"] for c in costs.values()) or 1

    def norm(counts: dict[str, int]) -> dict[str, float]:
        return {k: round(v / ops, 2) for k, v in counts.items()}

    types = sorted({t for c in costs.values() for t in c["actions_by_workflow"]})
    events = add(c["events"] for c in costs.values())
    return {
        "groups": len(costs),
        "operations": sum(c["operations"] for c in costs.values()),
        "actions": norm(add(c["actions"] for c in costs.values())),
        "actions_by_workflow": {
            t: norm(add(c["actions_by_workflow"].get(t, {}) for c in costs.values())) for t in types
        },
        "history_events": round(sum(events.values()) / ops, 2),
        "history_events_by_type": norm(events),
    }
