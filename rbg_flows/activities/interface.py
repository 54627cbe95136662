"""The activities as the workflows see them: names and typed signatures, no implementation.

Workflows schedule activities through these stubs, so importing a workflow never imports the
Kubernetes client or a manifest builder; the worker registers the implementations (methods of the
classes in this package, injected with their clients) under the same names. `tests/unit` checks that
every stub has an implementation with the same signature, and the workflow tests register stand-ins
under these names.
"""

from __future__ import annotations

from temporalio import activity

from rbg_flows.messages import (
    AdapterSync,
    AdapterSyncResult,
    DeletePods,
    DeployedRole,
    PartitionRequest,
    PlacementChoice,
    PodRef,
    PruneRequest,
    ReplicasRequest,
    RevisionInfo,
    RoleDeploy,
    RolePodsRequest,
    RoleRollState,
    SetChild,
    SetChildUpdate,
    SetChildWait,
    SetRef,
    SetStatusUpdate,
    SetView,
    SpecEvent,
    SpecRef,
    SpecRewrite,
    StatusUpdate,
    StepRequest,
    StepWait,
    Timeouts,
    ValidationReport,
)


def _stub(name: str) -> NotImplementedError:
    return NotImplementedError(f"activity {name} runs on a worker, not here")


@activity.defn(name="settings")
async def settings() -> Timeouts:
    """The worker's operator settings (timeouts), read when an operation starts."""
    raise _stub("settings")


@activity.defn(name="prepare")
async def prepare(event: SpecEvent) -> ValidationReport:
    """Validate the spec; when deployable, apply the discovery ConfigMap."""
    raise _stub("prepare")


@activity.defn(name="record_revision")
async def record_revision(event: SpecEvent) -> RevisionInfo:
    raise _stub("record_revision")


@activity.defn(name="place")
async def place(ref: SpecRef) -> PlacementChoice:
    """Choose the group's topology domains and commit them to the placement ledger."""
    raise _stub("place")


@activity.defn(name="deploy_role")
async def deploy_role(req: RoleDeploy) -> DeployedRole:
    """Apply one role's workload (its headless Service first) and wait until it is ready, or its readiness
    changes, or the deadline passes; one activity per role and round instead of an apply and a wait."""
    raise _stub("deploy_role")


@activity.defn(name="read_replicas")
async def read_replicas(req: ReplicasRequest) -> dict[str, int]:
    """The replicas the roles' workloads have now: where a coordinated scale starts."""
    raise _stub("read_replicas")


@activity.defn(name="sync_adapters")
async def sync_adapters(req: AdapterSync) -> AdapterSyncResult:
    """Create, delete and mirror the group's scaling adapters; a Bound adapter's replicas go into the
    role (the group's spec), and the group as left is returned."""
    raise _stub("sync_adapters")


@activity.defn(name="role_pods")
async def role_pods(req: RolePodsRequest) -> dict[str, list[PodRef]]:
    """The live pods of these roles now: what a failover deletes."""
    raise _stub("role_pods")


@activity.defn(name="delete_pods")
async def delete_pods(req: DeletePods) -> int:
    """Delete exactly these pods (uid preconditions)."""
    raise _stub("delete_pods")


@activity.defn(name="report")
async def report(upd: StatusUpdate) -> None:
    raise _stub("report")


@activity.defn(name="set_partition")
async def set_partition(req: PartitionRequest) -> RoleRollState:
    raise _stub("set_partition")


@activity.defn(name="step_role")
async def step_role(req: StepRequest) -> RoleRollState:
    raise _stub("step_role")


@activity.defn(name="wait_step")
async def wait_step(req: StepWait) -> RoleRollState:
    raise _stub("wait_step")


@activity.defn(name="prune_roles")
async def prune_roles(req: PruneRequest) -> list[str]:
    raise _stub("prune_roles")


@activity.defn(name="rewrite_spec")
async def rewrite_spec(req: SpecRewrite) -> SpecEvent:
    raise _stub("rewrite_spec")


@activity.defn(name="sync_set")
async def sync_set(ref: SetRef) -> SetView:
    """A RoleBasedGroupSet's groups created and deleted to match spec.replicas, and read."""
    raise _stub("sync_set")


@activity.defn(name="update_set_child")
async def update_set_child(upd: SetChildUpdate) -> SetChild:
    raise _stub("update_set_child")


@activity.defn(name="wait_set_child")
async def wait_set_child(req: SetChildWait) -> SetChild:
    raise _stub("wait_set_child")


@activity.defn(name="report_set")
async def report_set(upd: SetStatusUpdate) -> None:
    raise _stub("report_set")


STUBS = (
    settings,
    prepare,
    record_revision,
    place,
    deploy_role,
    read_replicas,
    sync_adapters,
    role_pods,
    delete_pods,
    report,
    set_partition,
    step_role,
    wait_step,
    prune_roles,
    rewrite_spec,
    sync_set,
    update_set_child,
    wait_set_child,
    report_set,
)
