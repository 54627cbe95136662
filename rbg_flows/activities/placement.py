"""The placement activity: read the cluster's nodes and pods, decide where the group goes, and commit
the decision to the ledger before any pod of the group exists.

The ledger is one ConfigMap (`rbg-flows-placement` in the worker's namespace) written with its
resourceVersion as a precondition: two workers deciding at the same moment cannot both commit on what
they read, and the one that loses decides again on fresh data. The decision is the activity's result,
so it is recorded in the operation's history and a replay never chooses again; a retried activity finds
its own grant in the ledger and keeps it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.common import beat, groups_readable, kube_call, kube_error, resolve
from rbg_flows.api import RoleBasedGroup
from rbg_flows.api.keys import (
    EXCLUSIVE_TOPOLOGY_ANNOTATION,
    GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION,
    GROUP_UNIQUE_KEY_LABEL,
)
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import ApiError, KubeClient, list_all
from rbg_flows.kube.kinds import GROUPS
from rbg_flows.manifests.labels import group_unique_key
from rbg_flows.messages import PlacementChoice, PlacementTerm, RolePlacement, SpecRef
from rbg_flows.placement.demand import Component, components
from rbg_flows.placement.ledger import Entry, Grant, parse_ledger, prune, reserve
from rbg_flows.placement.solve import Decision, solve
from rbg_flows.placement.tiers import LabelKeys, Tier
from rbg_flows.placement.topology import cluster_from_snapshot, gpus_of_pod

log = structlog.get_logger(__name__)
JSON = dict[str, Any]
LEDGER = "rbg-flows-placement"
# Commits lost to another worker's before this one gives up (each loss means someone else progressed).
COMMIT_ATTEMPTS = 20


class PlacementActivities:
    def __init__(
        self, kube: KubeClient, cache: WorkloadCache | None, namespace: str, keys: LabelKeys | None = None
    ):
        self.kube = kube
        self.cache = cache
        self.namespace = namespace
        self.keys = keys or LabelKeys()

    @activity.defn(name="place")
    async def place(self, ref: SpecRef) -> PlacementChoice:
        rbg = await resolve(self.kube, ref, self.cache)
        return await self._place(rbg, group_unique_key(ref.key.namespace, ref.key.name), ref.uid, commit=True)

    async def preview(self, rbg: RoleBasedGroup) -> PlacementChoice:
        """What `place` would choose for `rbg` on the cluster as it is now, committing nothing (what
        `rbg-flows plan` shows)."""
        namespace, name = rbg.metadata.namespace or "", rbg.metadata.name or ""
        return await self._place(rbg, group_unique_key(namespace, name), rbg.metadata.uid or "", commit=False)

    async def _place(self, rbg: RoleBasedGroup, me: str, uid: str, *, commit: bool) -> PlacementChoice:
        spec = rbg.spec.placement
        if spec is None or spec.policy == "None":
            return PlacementChoice(summary="placement not asked")
        comps = components(rbg.spec, self.keys.gpu)
        if not comps:
            status = {"policy": spec.policy, "level": spec.level, "message": "no GPU pods that communicate"}
            return PlacementChoice(status=status, summary="nothing to place: no GPU pods that communicate")
        for _ in range(COMMIT_ATTEMPTS):
            beat("deciding")
            try:
                choice = await self._decide(rbg, uid, comps, me, commit=commit)
            except _Lost:
                continue
            except ApplicationError as e:
                if e.type != "Kube403":
                    raise
                return self._not_allowed(rbg, e.message)
            return choice
        raise ApplicationError(f"placement ledger: lost {COMMIT_ATTEMPTS} commits in a row to other workers")

    async def _decide(
        self, rbg: RoleBasedGroup, uid: str, comps: list[Component], me: str, *, commit: bool
    ) -> PlacementChoice:
        spec = rbg.spec.placement
        assert spec is not None
        ledger = await kube_call(lambda: self.kube.get_or_none(self._ledger_path()))
        data = dict((ledger or {}).get("data") or {})
        # A deleted group's grant is released before anything is counted against it.
        live = await self._live_groups()
        entries = prune(parse_ledger(data), live) if live is not None else parse_ledger(data)
        nodes, _ = await kube_call(lambda: list_all(self.kube, "/api/v1/nodes"))
        pods, _ = await kube_call(
            lambda: list_all(
                self.kube, "/api/v1/pods", fieldSelector="status.phase!=Succeeded,status.phase!=Failed"
            )
        )
        held: dict[str, list[int]] = defaultdict(list)
        others = []
        for pod in pods:
            group = ((pod.get("metadata") or {}).get("labels") or {}).get(GROUP_UNIQUE_KEY_LABEL)
            if group == me:
                continue  # the group's own pods are part of what is being placed: their GPUs count as free
            if group and (pod.get("spec") or {}).get("nodeName"):
                held[group].append(gpus_of_pod(pod, self.keys.gpu))
            others.append(pod)
        cluster = reserve(cluster_from_snapshot(nodes, others, self.keys), entries, held, me)
        exclusive = spec.exclusive or _exclusive_annotation(rbg)
        own = entries.get(me)
        pinned = {g.component: g.domain for g in own.grants} if own and own.uid == uid else _recorded(rbg)
        level = Tier.of_level(spec.level)
        decision = solve(
            cluster,
            comps,
            level=level,
            required=spec.policy == "Required",
            exclusive=exclusive,
            pinned=pinned,
        )
        if decision.error:
            return PlacementChoice(
                error=decision.error, status=_status(rbg, decision, {}), summary=decision.error
            )
        entry = Entry(
            me,
            uid,
            exclusive,
            tuple(
                Grant(c.component.name, c.domain.ident, c.component.pods)
                for c in decision.choices
                if c.domain
            ),
        )
        kept = {**entries, me: entry}
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": LEDGER, "namespace": self.namespace},
            "data": {g: e.dumps() for g, e in sorted(kept.items())},
        }
        if commit and (body["data"] != data or ledger is None):
            await self._commit(ledger, body)
        roles = _role_placements(rbg, decision, spec.policy == "Required", exclusive)
        return PlacementChoice(roles=roles, status=_status(rbg, decision, roles), summary=_summary(decision))

    def _ledger_path(self) -> str:
        return f"/api/v1/namespaces/{self.namespace}/configmaps/{LEDGER}"

    async def _commit(self, ledger: JSON | None, body: JSON) -> None:
        # Not through kube_call: a conflict here is not retried with the same body, it is decided again.
        try:
            if ledger is None:
                await self.kube.create(f"/api/v1/namespaces/{self.namespace}/configmaps", body)
            else:
                body["metadata"]["resourceVersion"] = ledger["metadata"]["resourceVersion"]
                await self.kube.request("PUT", self._ledger_path(), body=body)
        except ApiError as e:
            if e.status == 409:  # written by another worker since it was read (or created meanwhile)
                raise _Lost() from e
            raise kube_error(e) from e

    async def _live_groups(self) -> dict[str, str] | None:
        """unique key -> uid of every group there is, from the watch cache or, without one (`rbg-flows
        plan`, a failing watch), one LIST; None when neither can say (then no grant is released)."""
        if self.cache is not None and await groups_readable(self.cache):
            objects = list(self.cache.objects(GROUPS))
        else:
            try:
                objects, _ = await list_all(self.kube, f"/apis/{GROUPS.group_version}/{GROUPS.plural}")
            except ApiError:
                return None
        out = {}
        for obj in objects:
            meta = obj.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue  # going: its grant goes with it
            out[group_unique_key(meta.get("namespace", ""), meta.get("name", ""))] = str(meta.get("uid", ""))
        return out

    def _not_allowed(self, rbg: RoleBasedGroup, why: str) -> PlacementChoice:
        spec = rbg.spec.placement
        assert spec is not None
        message = f"placement cannot read the cluster's nodes and pods: {why}"
        status = {"policy": spec.policy, "level": spec.level, "message": message}
        if spec.policy == "Required":
            return PlacementChoice(error=message, status=status, summary=message)
        return PlacementChoice(status=status, summary=message)


class _Lost(Exception):
    """Another worker committed to the ledger since it was read."""


def _exclusive_annotation(rbg: RoleBasedGroup) -> bool:
    ann = rbg.metadata.annotations
    return bool(ann.get(EXCLUSIVE_TOPOLOGY_ANNOTATION) or ann.get(GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION))


def _recorded(rbg: RoleBasedGroup) -> dict[str, tuple[int, str, str]]:
    """Component domains as the group's status records them (the ledger lost or edited)."""
    placed = rbg.status.placement if rbg.status else None
    raw = (placed.model_extra or {}).get("components") if placed else None
    out: dict[str, tuple[int, str, str]] = {}
    if isinstance(raw, dict):
        for name, d in raw.items():
            if isinstance(d, dict) and {"tier", "key", "value"} <= d.keys():
                out[str(name)] = (int(Tier[str(d["tier"]).upper()]), str(d["key"]), str(d["value"]))
    return out


def _role_placements(
    rbg: RoleBasedGroup, decision: Decision, required: bool, exclusive: bool
) -> dict[str, RolePlacement]:
    terms: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    instance_keys: dict[str, set[str]] = defaultdict(set)
    for choice in decision.choices:
        if choice.domain is None:
            continue
        for role in choice.component.roles:
            terms[role][choice.domain.key].add(choice.domain.value)
            if "/" in choice.component.name:  # one LeaderWorkerSet instance: its pods share the domain
                instance_keys[role].add(choice.domain.key)
    out = {}
    for role, by_key in terms.items():
        keys = instance_keys.get(role, set())
        out[role] = RolePlacement(
            required=required and not any(c.spilled for c in decision.choices if role in c.component.roles),
            terms=[PlacementTerm(key=k, values=sorted(v)) for k, v in sorted(by_key.items())],
            instance_key=next(iter(keys)) if len(keys) == 1 else None,
            exclusive_key=next(iter(by_key)) if exclusive and len(by_key) == 1 else None,
        )
    return out


def _status(rbg: RoleBasedGroup, decision: Decision, roles: dict[str, RolePlacement]) -> dict[str, Any]:
    spec = rbg.spec.placement
    assert spec is not None
    domains = {role: ",".join(f"{t.key}={v}" for t in p.terms for v in t.values) for role, p in roles.items()}
    out: dict[str, Any] = {
        "policy": spec.policy,
        "level": spec.level,
        "message": decision.error or _summary(decision),
        "domains": domains,
    }
    if decision.error is None:
        out["tier"] = decision.tier.label
        out["score"] = round(decision.score / decision.best_possible, 4) if decision.best_possible else 1.0
        out["roles"] = {r: p.model_dump(exclude_none=True) for r, p in roles.items()}
        out["components"] = {
            c.component.name: {"tier": c.domain.tier.label, "key": c.domain.key, "value": c.domain.value}
            for c in decision.choices
            if c.domain
        }
    return out


def _summary(decision: Decision) -> str:
    parts = []
    for c in decision.choices:
        where = f"{c.domain.key}={c.domain.value}" if c.domain else "anywhere (nothing fits)"
        spill = ", grew beyond it" if c.spilled else ""
        parts.append(f"{c.component.name} -> {where} ({c.tier.label}{spill})")
    exact = "" if decision.complete else " (search budget reached: best found)"
    return (
        f"placed at {decision.tier.label}, score {decision.score}/{decision.best_possible}{exact}: "
        + "; ".join(parts)
    )
