"""kopf handlers. Each only translates an event into a signal; all logic lives in the workflows.

Every handler is a stateless `on.event` handler: kopf keeps no diff base, progress or finalizer on the
user's objects and writes nothing to them (a handler returning None stores no result). A RoleBasedGroup is
signalled when its generation moves past the last one signalled by this process, and on the first sight
after a start; the entity ignores a generation it has seen, which is what makes the repeats harmless.

A ClusterEngineRuntimeProfile is signalled the same way to every group whose roles name it, found in a
map the handlers keep (`profile_users.ProfileUsers`; not a kopf index, which holds every handler until
every watched namespace is listed); the entity ignores a profile content it has built with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf
import structlog
from pydantic import ValidationError

from rbg_flows.api.common import GROUP, VERSION, VERSION_V1ALPHA2
from rbg_flows.api.keys import GROUP_NAME_LABEL, ROLE_LABEL
from rbg_flows.api.profile import ClusterEngineRuntimeProfileSpec
from rbg_flows.messages import AdapterChanged, PodFailure, ProfileChange, profile_fingerprint
from rbg_flows.observability.metrics import SIGNAL_LATENCY
from rbg_flows.watcher import cluster
from rbg_flows.watcher.cluster import RBG
from rbg_flows.watcher.failures import FailureMemo
from rbg_flows.watcher.profile_users import ProfileUsers
from rbg_flows.watcher.signaller import Signaller

log = structlog.get_logger(__name__)

WORKLOADS = (
    ("apps", "v1", "statefulsets"),
    ("apps", "v1", "deployments"),
    ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets"),
)
PROFILES = (GROUP, VERSION, "clusterengineruntimeprofiles")
ADAPTERS = (GROUP, VERSION, "rolebasedgroupscalingadapters")
SETS = (GROUP, VERSION_V1ALPHA2, "rolebasedgroupsets")
MAX_RETRY_DELAY = 30.0


# Retries of one API request (kopf's default waits 1+1+2+3+5+8+13+21 s): a transient answer (a CRD's
# storage re-initialising, a restarting API server) must cost seconds, not stall the start for a minute.
ERROR_BACKOFFS = (0.5, 1.0, 1.0, 2.0, 2.0, 3.0, 5.0, 5.0)


def configure(settings: kopf.OperatorSettings) -> None:
    settings.posting.level = logging.WARNING
    settings.networking.error_backoffs = ERROR_BACKOFFS
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330


async def deliver(what: str, send: Callable[[], Awaitable[None]]) -> None:
    """Send a signal until Temporal takes it. kopf never retries an `on.event` handler, and a lost signal
    would leave a change unseen until the object changes again; kopf queues the object's later events
    meanwhile and hands over the newest."""
    delay = 1.0
    while True:
        try:
            await send()
            return
        except Exception as e:
            log.warning("could not signal the workflow; retrying", what=what, error=str(e) or repr(e))
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)


DELETED_GENERATION = 1 << 62  # past any generation: a deleted workload is always drift


def group_owner(meta: Mapping[str, Any], kind: str = "RoleBasedGroup") -> Mapping[str, Any] | None:
    """The RoleBasedGroup that controls a workload (or the `kind` that controls an object), from its
    owner references."""
    return next(
        (o for o in meta.get("ownerReferences") or [] if o.get("kind") == kind and o.get("controller")),
        None,
    )


def readiness(type: str | None, body: Mapping[str, Any]) -> str:
    """What a set needs to hear of one of its groups: its Ready condition, the generation that
    condition is about, and whether the group still exists; a change of it is signalled."""
    if type == "DELETED":
        return "deleted"
    status = body.get("status") or {}
    ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    generation = body["metadata"].get("generation")
    return f"{ready.get('status')}/{ready.get('observedGeneration')}/{generation}"


def drift_generation(type: str | None, meta: Mapping[str, Any], seen: dict[str, int]) -> int | None:
    """The generation to report as drift for this workload event, or None when there is nothing to say;
    `seen` (uid -> generation last handled) is updated.

    A deleted workload is drift: the repair re-creates it. A workload at generation 1 has not changed
    since it was created, and only we create them, so it cannot differ from what we applied: the one
    signal per role each deploy used to cost (and every workload again after a watcher restart) is not
    sent. A newer generation than the last seen is reported; the entity compares it with the generation
    its own apply left, so our own updates are recognised there."""
    uid = meta["uid"]
    if type == "DELETED":
        seen.pop(uid, None)
        return DELETED_GENERATION
    generation = int(meta.get("generation") or 0)
    if generation <= max(1, seen.get(uid, 0)):
        return None
    seen[uid] = generation
    return generation


def profiles_named(body: Mapping[str, Any]) -> list[str]:
    """The ClusterEngineRuntimeProfiles a RoleBasedGroup's roles name, each once."""
    roles = (body.get("spec") or {}).get("roles") or []
    names = (rt.get("profileName") for role in roles for rt in role.get("engineRuntimes") or [])
    return list(dict.fromkeys(str(n) for n in names if n))


def profile_change(body: Mapping[str, Any]) -> ProfileChange | None:
    """What to tell the groups using this profile, or None when it does not parse (a worker refusing the
    groups that use it says why, with the field path)."""
    try:
        spec = ClusterEngineRuntimeProfileSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return None
    return ProfileChange(
        name=body["metadata"]["name"],
        fingerprint=profile_fingerprint(spec),
        update_strategy=spec.update_strategy,
    )


def build_registry(signaller: Signaller, kubeconfig: str | None = None) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    # Generations already signalled, per object uid: status writes and resyncs of kopf's watch send
    # nothing. Only a memo of this process: a restart signals every group once more.
    signalled: dict[str, int] = {}
    seen_workloads: dict[str, int] = {}
    seen_profiles: dict[str, int] = {}
    seen_adapters: dict[str, int] = {}
    seen_sets: dict[str, int] = {}
    children: dict[str, str] = {}  # uid of a set's group -> its readiness last signalled
    failures = FailureMemo()
    users = ProfileUsers()

    @kopf.on.login(registry=registry)
    def _login(**_: Any) -> kopf.ConnectionInfo:
        # Through the official client, so exec credential plugins run; kopf calls this again on a 401.
        return cluster.login(kubeconfig)

    @kopf.on.startup(registry=registry)
    def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure(settings)

    @kopf.on.event(*RBG, registry=registry)
    async def _group(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        owner = group_owner(meta, "RoleBasedGroupSet")
        if owner is not None:
            await tell_set(type, body, owner)
        if type == "DELETED":
            signalled.pop(uid, None)
            users.group_gone((ns, name))
            with SIGNAL_LATENCY.labels(signal="deleted").time():
                await deliver(f"deleted {ns}/{name}", lambda: signaller.deleted(ns, name, uid))
            return
        generation = int(meta.get("generation") or 1)
        if signalled.get(uid, 0) >= generation:
            return
        # From the handler's call (kopf hands the event over) to Temporal accepting it, retries included.
        with SIGNAL_LATENCY.labels(signal="spec").time():
            await deliver(f"spec {ns}/{name} generation {generation}", lambda: signaller.spec(body))
        signalled[uid] = max(generation, signalled.get(uid, 0))
        # Profiles it names that were seen before it (at a start, or named by this new generation).
        for change in users.group_seen((ns, name), profiles_named(body)):
            await tell_profile(change, ns, name)

    async def tell_set(type: str | None, body: kopf.Body, owner: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        now = readiness(type, body)
        if children.get(meta["uid"]) == now:
            return
        if type == "DELETED":
            children.pop(meta["uid"], None)
        else:
            children[meta["uid"]] = now
        with SIGNAL_LATENCY.labels(signal="set_child").time():
            await deliver(
                f"group {meta['namespace']}/{meta['name']} of set {owner['name']}",
                lambda: signaller.set_child_changed(meta["namespace"], owner["name"], owner["uid"]),
            )

    @kopf.on.event(*SETS, registry=registry)
    async def _set(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        if type == "DELETED":
            seen_sets.pop(uid, None)
            with SIGNAL_LATENCY.labels(signal="set_deleted").time():
                await deliver(f"deleted set {ns}/{name}", lambda: signaller.set_deleted(ns, name, uid))
            return
        generation = int(meta.get("generation") or 1)
        if seen_sets.get(uid, 0) >= generation:
            return
        with SIGNAL_LATENCY.labels(signal="set").time():
            await deliver(
                f"set {ns}/{name} generation {generation}",
                lambda: signaller.set_spec(ns, name, uid, generation),
            )
        seen_sets[uid] = generation

    async def tell_profile(change: ProfileChange, ns: str, name: str) -> None:
        with SIGNAL_LATENCY.labels(signal="profile").time():
            await deliver(
                f"profile {change.name} to {ns}/{name}", lambda: signaller.profile(ns, name, change)
            )

    @kopf.on.event(*PROFILES, registry=registry)
    async def _profile(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        if type == "DELETED":
            # Nothing rolls for a deletion: the next build of a group using it refuses it, by name.
            seen_profiles.pop(meta["uid"], None)
            users.profile_gone(meta["name"])
            return
        generation = int(meta.get("generation") or 1)
        change = profile_change(body)
        if change is None or seen_profiles.get(meta["uid"], 0) >= generation:
            return
        for ns, name in users.profile_seen(change):
            await tell_profile(change, ns, name)
        seen_profiles[meta["uid"]] = generation

    @kopf.on.event(*ADAPTERS, registry=registry)
    async def _adapter(type: str | None, body: kopf.Body, **_: Any) -> None:
        # Only the adapters a group owns (the ones the orchestrator made); a scale, or a deletion the
        # group's next sync answers by re-creating it. Our own status writes move no generation.
        meta = body["metadata"]
        owner = group_owner(meta)
        if owner is None:
            return
        generation = DELETED_GENERATION if type == "DELETED" else int(meta.get("generation") or 1)
        if type == "DELETED":
            seen_adapters.pop(meta["uid"], None)
        elif seen_adapters.get(meta["uid"], 0) >= generation:
            return
        else:
            seen_adapters[meta["uid"]] = generation
        change = AdapterChanged(uid=owner["uid"], adapter=meta["name"], generation=generation)
        with SIGNAL_LATENCY.labels(signal="adapter").time():
            await deliver(
                f"adapter {meta['namespace']}/{meta['name']}",
                lambda: signaller.adapter(meta["namespace"], owner["name"], change),
            )

    @kopf.on.event("", "v1", "pods", labels={GROUP_NAME_LABEL: kopf.PRESENT}, registry=registry)
    async def _pod(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        labels = meta.get("labels") or {}
        reason = failures.failure(type, body)
        if reason is None or not labels.get(ROLE_LABEL):
            return
        failure = PodFailure(role=labels[ROLE_LABEL], pod=meta["name"], pod_uid=meta["uid"], reason=reason)
        group = labels[GROUP_NAME_LABEL]
        with SIGNAL_LATENCY.labels(signal="pod_failed").time():
            await deliver(
                f"pod {meta['namespace']}/{meta['name']} {reason}",
                lambda: signaller.pod_failed(meta["namespace"], group, failure),
            )

    async def workload_event(type: str | None, body: kopf.Body, **_: Any) -> None:
        meta = body["metadata"]
        owner = group_owner(meta)
        drift = drift_generation(type, meta, seen_workloads)
        if owner is None or drift is None:
            return
        with SIGNAL_LATENCY.labels(signal="drift").time():
            await signaller.drift(meta["namespace"], owner["name"], owner["uid"], meta["name"], drift)

    for group, version, plural in WORKLOADS:
        kopf.on.event(group, version, plural, labels={GROUP_NAME_LABEL: kopf.PRESENT}, registry=registry)(
            workload_event
        )
    return registry
