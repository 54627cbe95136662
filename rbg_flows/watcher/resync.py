"""Resync: tell running entity workflows whose RoleBasedGroup is gone that it is, and signal the groups
that have no entity.

A deletion that happens while the watcher is down is never delivered as an event, so on start (and
periodically) the watcher compares the running entities with the groups that exist. The same comparison
finds a group no entity serves: its first event was missed (kopf's watch stream of a namespace that failed
its first listing is only started again at the namespace's next change), and it is signalled as the watch
event would have been. The comparisons are pure (`stale_entities`, `unserved_groups`); the I/O around
them is a visibility query, one list call, a read of each unserved group and signals.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import structlog
from temporalio.client import Client

from rbg_flows.messages import ENTITY_WORKFLOW, RBG_CLUSTER, RBG_NAME, RBG_NAMESPACE, RBG_UID, RbgKey

log = structlog.get_logger(__name__)

_GLOB = set("*?[!")


@dataclass(frozen=True)
class RunningEntity:
    workflow_id: str
    namespace: str
    name: str
    uid: str  # the uid the entity was started for (its RbgUid search attribute)


@dataclass(frozen=True)
class ExistingGroup:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class Deletion:
    workflow_id: str
    uid: str  # the entity's uid, which it compares: a group re-created under the name is left alone


def stale_entities(running: Iterable[RunningEntity], existing: Iterable[ExistingGroup]) -> list[Deletion]:
    """The entities to signal `deleted(uid)`: their group is gone, or exists under another uid (deleted
    and created again). Sending the entity's own, old uid is what makes the second case safe: an entity
    that has already taken up the new object (a spec signal with the new uid reached it first) ignores it.
    """
    uids = {(g.namespace, g.name): g.uid for g in existing}
    return [
        Deletion(e.workflow_id, e.uid)
        for e in sorted(running, key=lambda e: e.workflow_id)
        if uids.get((e.namespace, e.name)) != e.uid
    ]


def unserved_groups(
    running: Iterable[RunningEntity], existing: Iterable[ExistingGroup]
) -> list[ExistingGroup]:
    """The groups no running entity serves (none for the name, or one for an earlier object of it). A
    group created since the entities were read, or an entity not yet visible, lands here too: signalling
    it again is harmless (an entity ignores a generation it has seen)."""
    served = {(e.namespace, e.name, e.uid) for e in running}
    return sorted(
        (g for g in existing if (g.namespace, g.name, g.uid) not in served),
        key=lambda g: (g.namespace, g.name),
    )


def literal_namespaces(patterns: list[str]) -> list[str] | None:
    """The namespaces as plain names, or None when watching all of them or any pattern is a glob."""
    if not patterns or any(_GLOB & set(p) for p in patterns):
        return None
    return sorted(set(patterns))


def namespace_selected(namespace: str, patterns: list[str]) -> bool:
    """kopf's namespace patterns: globs, and `!glob` to exclude; no patterns means every namespace."""
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    if include and not any(fnmatch.fnmatchcase(namespace, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(namespace, p) for p in exclude)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def visibility_query(task_queue: str, patterns: list[str], cluster: str = "") -> str:
    """Running entities of this orchestrator (its task queue and its cluster: another cluster's groups
    are not in this one's list, and must not be taken for deleted), narrowed to the watched namespaces
    when they are plain names; globs are filtered after the query (`namespace_selected`)."""
    query = (
        f"WorkflowType = {_quote(ENTITY_WORKFLOW)} AND ExecutionStatus = 'Running'"
        f" AND TaskQueue = {_quote(task_queue)}"
    )
    if cluster:
        query += f" AND {RBG_CLUSTER.name} = {_quote(cluster)}"
    names = literal_namespaces(patterns)
    if names:
        query += f" AND {RBG_NAMESPACE.name} IN ({', '.join(map(_quote, names))})"
    return query


def _identity(workflow_id: str, namespace: str | None, name: str | None) -> tuple[str, str] | None:
    if namespace and name:
        return namespace, name
    key = RbgKey.parse(workflow_id)
    return (key.namespace, key.name) if key else None


async def running_entities(
    client: Client, task_queue: str, patterns: list[str], cluster: str = ""
) -> list[RunningEntity]:
    found = []
    async for wf in client.list_workflows(visibility_query(task_queue, patterns, cluster)):
        attrs = wf.typed_search_attributes
        ident = _identity(wf.id, attrs.get(RBG_NAMESPACE), attrs.get(RBG_NAME))
        if ident is None or not namespace_selected(ident[0], patterns):
            continue
        found.append(RunningEntity(wf.id, ident[0], ident[1], attrs.get(RBG_UID) or ""))
    return found


ListGroups = Callable[[list[str] | None], list[ExistingGroup]]
SignalDeleted = Callable[[str, str], Awaitable[None]]
SignalUnserved = Callable[[ExistingGroup], Awaitable[None]]


async def _nothing(_: ExistingGroup) -> None:
    return None


async def resync_once(
    client: Client,
    task_queue: str,
    patterns: list[str],
    list_groups: ListGroups,
    signal_deleted: SignalDeleted,
    cluster: str = "",
    signal_unserved: SignalUnserved = _nothing,
) -> list[Deletion]:
    # Entities first, groups second: an entity is only started after its group exists, so a group
    # created between the two reads is in the second one and its new entity is not taken for stale.
    running = await running_entities(client, task_queue, patterns, cluster)
    groups = await asyncio.to_thread(list_groups, literal_namespaces(patterns))
    existing = [g for g in groups if namespace_selected(g.namespace, patterns)]
    deletions = stale_entities(running, existing)
    for d in deletions:
        log.info("resync: group gone, ending its entity", workflow_id=d.workflow_id, uid=d.uid)
        await signal_deleted(d.workflow_id, d.uid)
    for g in unserved_groups(running, existing):
        log.info("resync: a group no entity serves, signalling it", namespace=g.namespace, name=g.name)
        await signal_unserved(g)
    return deletions


async def resync_forever(
    client: Client,
    task_queue: str,
    patterns: list[str],
    list_groups: ListGroups,
    signal_deleted: SignalDeleted,
    every_seconds: float,
    retry_seconds: float = 10.0,
    cluster: str = "",
    signal_unserved: SignalUnserved = _nothing,
) -> None:
    """Resync now, then every `every_seconds` (0: only now); a failed round (API server or Temporal
    unreachable, the CRD not served) is logged and retried sooner, and never signals anything from a
    partial view."""
    while True:
        try:
            await resync_once(
                client, task_queue, patterns, list_groups, signal_deleted, cluster, signal_unserved
            )
            if every_seconds <= 0:
                return
            delay = every_seconds
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("resync failed; will retry", error=str(e) or repr(e), retry_in=retry_seconds)
            delay = min(retry_seconds, every_seconds) if every_seconds > 0 else retry_seconds
        await asyncio.sleep(delay)
