"""What the caller may do, asked of the API server (SelfSubjectAccessReview): for tools that act on a
user's behalf through another channel (the controls go through Temporal, which knows nothing of RBAC)."""

from __future__ import annotations

from rbg_flows.api.common import GROUP
from rbg_flows.kube.client import KubeClient

REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


async def may(kube: KubeClient, verb: str, resource: str, namespace: str, name: str) -> tuple[bool, str]:
    """Whether the caller may `verb` the `resource` (of our API group) `namespace/name`, and the
    authorizer's reason when it says no."""
    review = await kube.create(
        REVIEWS,
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "group": GROUP,
                    "resource": resource,
                    "verb": verb,
                    "namespace": namespace,
                    "name": name,
                }
            },
        },
    )
    status = review.get("status") or {}
    return bool(status.get("allowed")), str(status.get("reason") or "")
