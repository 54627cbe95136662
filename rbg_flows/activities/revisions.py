"""ControllerRevisions: one per spec revision, recorded before a roll, the newest ten kept."""

from __future__ import annotations

from functools import partial

from temporalio import activity

from rbg_flows.activities.common import JSON, kube_call, model_of
from rbg_flows.activities.profiles import ProfileReader
from rbg_flows.api.keys import CONTROLLER_REVISION_HASH_LABEL, GROUP_NAME_LABEL
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import ApiError, KubeClient
from rbg_flows.manifests.engine_runtime import group_fingerprints
from rbg_flows.manifests.labels import owned_by
from rbg_flows.manifests.revisions import build_controller_revision, next_revision, to_prune
from rbg_flows.messages import RevisionInfo, RevisionRecord, SpecEvent


class RevisionActivities:
    def __init__(self, kube: KubeClient, cache: WorkloadCache | None = None):
        self.kube = kube
        self.profiles = ProfileReader(kube, cache)

    @activity.defn(name="record_revision")
    async def record_revision(self, event: SpecEvent) -> RevisionInfo:
        """The ControllerRevision of this spec (created when new), pruned to the newest ten."""
        rbg = model_of(event)
        ns, name = rbg.metadata.namespace or "", rbg.metadata.name or ""
        collection = f"/apis/apps/v1/namespaces/{ns}/controllerrevisions"
        existing = (
            await kube_call(lambda: self.kube.get(collection, labelSelector=f"{GROUP_NAME_LABEL}={name}"))
        )["items"]
        mine = [r for r in existing if owned_by(r, event.uid)]
        fingerprints = group_fingerprints(rbg, (await self.profiles.for_group(rbg)).profiles)
        wanted = build_controller_revision(rbg, next_revision(mine), fingerprints)
        found: JSON | None = next(
            (r for r in mine if r["metadata"]["name"] == wanted["metadata"]["name"]), None
        )
        previous = max(mine, key=lambda r: int(r.get("revision", 0)), default=None)
        created = found is None
        if found is not None and previous is not None and found is not previous:
            # Back to an older spec (a rollback): like Deployments and StatefulSets, that revision
            # becomes the newest, so history lists it last and pruning keeps it. Recreated rather than
            # patched: the API server re-encodes `data` on a patch and then refuses it as a change to
            # an immutable field. A retry after the delete finds nothing and creates it: no loss.
            stale_path = f"{collection}/{found['metadata']['name']}"
            await kube_call(partial(self.kube.delete, stale_path))
            mine = [r for r in mine if r["metadata"]["name"] != found["metadata"]["name"]]
            found = None
        if found is None:

            async def create() -> JSON:
                try:
                    return await self.kube.create(collection, wanted)
                except ApiError as e:
                    if e.status != 409:
                        raise
                    return await self.kube.get(f"{collection}/{wanted['metadata']['name']}")

            found = await kube_call(create)
            mine.append(found)
        pruned = set(to_prune(mine, found["metadata"]["name"]))
        for stale in sorted(pruned):
            await kube_call(partial(self.kube.delete, f"{collection}/{stale}"))
        kept = sorted(
            (r for r in mine if r["metadata"]["name"] not in pruned), key=lambda r: int(r.get("revision", 0))
        )
        return RevisionInfo(
            name=found["metadata"]["name"],
            revision=int(found.get("revision", 0)),
            hash=found["metadata"]["labels"].get(CONTROLLER_REVISION_HASH_LABEL, ""),
            created=created,
            previous=previous["metadata"]["name"] if previous else None,
            history=[
                RevisionRecord(name=r["metadata"]["name"], revision=int(r.get("revision", 0))) for r in kept
            ],
        )
