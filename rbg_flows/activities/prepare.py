"""Validation of a spec before anything is created, and what every role needs first."""

from __future__ import annotations

from temporalio import activity

from rbg_flows.activities.common import kube_call, model_of
from rbg_flows.activities.gang import GangApis
from rbg_flows.activities.profiles import ProfileReader
from rbg_flows.api import parse_rbg
from rbg_flows.api.validation import FieldError
from rbg_flows.kube.cache import WorkloadCache
from rbg_flows.kube.client import FIELD_MANAGER, KubeClient
from rbg_flows.kube.kinds import CONFIGMAP, LWS_API
from rbg_flows.manifests.discovery import discovery_configmap
from rbg_flows.manifests.engine_runtime import group_fingerprints
from rbg_flows.manifests.gang import gang_problems
from rbg_flows.messages import SpecEvent, ValidationReport


class PrepareActivities:
    def __init__(self, kube: KubeClient, cache: WorkloadCache | None = None):
        self.kube = kube
        self.profiles = ProfileReader(kube, cache)
        self.gang = GangApis(kube)

    @activity.defn(name="prepare")
    async def prepare(self, event: SpecEvent) -> ValidationReport:
        """Validate the spec; when it is deployable, apply what every role needs first (the discovery
        ConfigMap, the gang scheduling objects), so a refused spec creates nothing."""
        report = await self.validate(event)
        if not report.problems:
            rbg = model_of(event)
            cm = discovery_configmap(rbg)
            path = CONFIGMAP.path(rbg.metadata.namespace or "", cm["metadata"]["name"])
            await kube_call(lambda: self.kube.apply(path, cm, FIELD_MANAGER))
            await self.gang.sync(rbg)
        return report

    async def validate(self, event: SpecEvent) -> ValidationReport:
        rbg, problems = parse_rbg(event.obj)
        if rbg is None:
            return ValidationReport(problems=problems)
        lws_roles = [i for i, r in enumerate(rbg.spec.roles) if r.is_leader_worker_set]
        if lws_roles and await kube_call(lambda: self.kube.get_or_none(LWS_API)) is None:
            problems = [
                *problems,
                *(
                    FieldError(
                        path=f"spec.roles[{i}].workload",
                        message="LeaderWorkerSet is not served by this cluster: install the LeaderWorkerSet "
                        "CRD (leaderworkersets.leaderworkerset.x-k8s.io) and its controller",
                    )
                    for i in lws_roles
                ),
            ]
        if rbg.spec.pod_group_policy is not None:
            # Read afresh: a gang scheduler installed a moment ago counts.
            served = await self.gang.served(fresh=True)
            problems = [*problems, *gang_problems(rbg.spec.pod_group_policy, served)]
        # A missing profile is a problem of the spec like any other: nothing is created, and the group
        # is tried again when the profile appears (the watcher signals it) or the spec changes.
        resolved = await self.profiles.for_group(rbg)
        problems = [*problems, *resolved.problems(rbg)]
        if problems:
            return ValidationReport(problems=problems)
        report = ValidationReport.plan(rbg)
        report.profiles = group_fingerprints(rbg, resolved.profiles)
        return report
