"""Every activity's log context and retry metrics, in one place: a Temporal interceptor.

Given to the client (`Client(..., interceptors=[ActivityObservability()])`), it wraps every activity the
worker runs, local ones included, so no activity class repeats it: at the start of each attempt it binds
the group, the operation and the workflow ids into structlog's context (each activity runs in its own task,
so the binding ends with it), counts an attempt after the first as a retry under the error type that ended
the previous one, and counts a failed attempt by its error type.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import structlog
from temporalio import activity, client, worker
from temporalio.exceptions import ApplicationError, is_cancelled_exception

from rbg_flows.messages import ENTITY_WORKFLOW
from rbg_flows.observability.metrics import ACTIVITY_FAILURES, ACTIVITY_RETRIES
from rbg_flows.observability.operations import operation_kind

# Failures of attempts that may be retried here, by (run, activity id): enough for thousands of
# concurrent activities; an older entry only makes a retry's type "unknown".
_REMEMBERED = 10_000


def group_of(workflow_id: str, workflow_type: str) -> tuple[str, str] | None:
    """(namespace, name) from `rbg.<ns>.<name>` (the entity) or `rbg.<ns>.<name>.<kind>.<suffix>` (an
    operation). A namespace has no dots; a name may, which is why the workflow type decides the suffix."""
    if not workflow_id.startswith("rbg."):
        return None
    namespace, _, rest = workflow_id.removeprefix("rbg.").partition(".")
    if not rest:
        return None
    if workflow_type != ENTITY_WORKFLOW:
        parts = rest.rsplit(".", 2)
        if len(parts) != 3:
            return None
        rest = parts[0]
    return namespace, rest


def log_context(info: activity.Info) -> dict[str, Any]:
    """What every line an activity logs carries."""
    ctx: dict[str, Any] = {
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "activity": info.activity_type,
        "attempt": info.attempt,
    }
    group = group_of(info.workflow_id or "", info.workflow_type or "")
    if group is not None:
        ctx["group"] = f"{group[0]}/{group[1]}"
    kind = operation_kind(info.workflow_id or "")
    if kind is not None:
        ctx["operation"] = kind
        ctx["operation_id"] = info.workflow_id
    return ctx


def error_type(e: BaseException) -> str:
    """The type Temporal reports: an ApplicationError's own type (`Kube409`, `WatchFailing`), else the
    exception's class name."""
    if isinstance(e, ApplicationError) and e.type:
        return e.type
    return type(e).__name__


class _Inbound(worker.ActivityInboundInterceptor):
    def __init__(self, next: worker.ActivityInboundInterceptor, failures: OrderedDict[str, str]):
        super().__init__(next)
        self._failures = failures

    async def execute_activity(self, input: worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        key = f"{info.workflow_run_id}/{info.activity_id}"
        if info.attempt > 1:
            previous = self._failures.pop(key, "unknown")
            ACTIVITY_RETRIES.labels(activity=info.activity_type, error_type=previous).inc()
        # Not reset on return: the SDK runs each activity in a task of its own (whose context is a copy),
        # so the binding also reaches the SDK's own lines about this attempt ("completing activity as
        # failed") and ends with the task.
        structlog.contextvars.bind_contextvars(**log_context(info))
        try:
            return await super().execute_activity(input)
        except BaseException as e:
            if is_cancelled_exception(e):
                raise  # a superseded operation: no failure
            kind = error_type(e)
            retryable = not (isinstance(e, ApplicationError) and e.non_retryable)
            ACTIVITY_FAILURES.labels(
                activity=info.activity_type, error_type=kind, retryable=str(retryable).lower()
            ).inc()
            if retryable:
                self._failures[key] = kind
                while len(self._failures) > _REMEMBERED:
                    self._failures.popitem(last=False)
            raise


class ActivityObservability(client.Interceptor, worker.Interceptor):
    """A client interceptor that is also a worker interceptor: workers built on the client use it."""

    def __init__(self) -> None:
        self._failures: OrderedDict[str, str] = OrderedDict()

    def intercept_activity(
        self, next: worker.ActivityInboundInterceptor
    ) -> worker.ActivityInboundInterceptor:
        return _Inbound(next, self._failures)
