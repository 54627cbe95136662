"""The profile reader of the activities, against a stand-in API server (no cache): what it reads, and what
it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from rbg_flows.activities.profiles import ProfileReader
from rbg_flows.kube.kinds import PROFILES
from tests.unit.test_manifests_examples import pd_rbg


class Server:
    """Answers GETs of profiles from a dict, and counts them."""

    def __init__(self, profiles: dict[str, dict[str, Any]]):
        self.profiles = profiles
        self.gets: list[str] = []

    async def get_or_none(self, path: str) -> dict[str, Any] | None:
        self.gets.append(path)
        return self.profiles.get(path.rsplit("/", 1)[-1])


async def test_a_group_without_profiles_reads_nothing() -> None:
    server = Server({})
    reader = ProfileReader(server)  # type: ignore[arg-type]
    resolved = await reader.for_group(pd_rbg())
    assert resolved.profiles == {} and resolved.problems(pd_rbg()) == [] and server.gets == []


async def test_missing_and_invalid_profiles_are_problems_and_a_build_refuses_them() -> None:
    rbg = pd_rbg(
        prefill={"engineRuntimes": [{"profileName": "bad"}]},
        decode={"engineRuntimes": [{"profileName": "gone"}]},
    )
    server = Server({"bad": {"spec": {"containers": [], "surprise": 1}}})
    reader = ProfileReader(server)  # type: ignore[arg-type]
    resolved = await reader.for_group(rbg)
    assert server.gets == [PROFILES.path("", "bad"), PROFILES.path("", "gone")]
    assert PROFILES.path("", "bad") == "/apis/workloads.x-k8s.io/v1alpha1/clusterengineruntimeprofiles/bad"
    messages = [str(p) for p in resolved.problems(rbg)]
    assert messages[0].startswith(
        'spec.roles[0].engineRuntimes[0].profileName: ClusterEngineRuntimeProfile "bad" is invalid'
    )
    assert (
        messages[1]
        == 'spec.roles[1].engineRuntimes[0].profileName: ClusterEngineRuntimeProfile "gone" not found'
    )
    with pytest.raises(ApplicationError) as refused:
        await reader.for_role(rbg, rbg.spec.role("decode"), None, None)
    assert refused.value.non_retryable and "'gone' not found" in refused.value.message
