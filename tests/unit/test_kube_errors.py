"""Which API errors are retried, with what delay, and what the user is told."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from rbg_flows.kube.client import ApiError
from rbg_flows.kube.errors import describe, is_retryable, with_retries


@pytest.mark.parametrize("status", [409, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(status: int) -> None:
    assert is_retryable(ApiError(status, "", ""))


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_client_errors_are_not(status: int) -> None:
    assert not is_retryable(ApiError(status, "", ""))


def test_network_errors_are_retried() -> None:
    assert is_retryable(aiohttp.ClientConnectionError())
    assert is_retryable(TimeoutError())
    assert not is_retryable(ValueError())


def test_describe_names_the_cause() -> None:
    msg = describe(ApiError(403, "Forbidden", "statefulsets.apps is forbidden"))
    assert "403" in msg and "forbidden" in msg and "RBAC" in msg


async def test_with_retries_recovers_from_transient_errors_and_honours_retry_after() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()

    async def flaky() -> str:
        calls.append(loop.time())
        if len(calls) == 1:
            raise ApiError(429, "TooManyRequests", "slow down", retry_after=0.3)
        if len(calls) == 2:
            raise ApiError(500, "InternalError", "boom")
        return "ok"

    assert await with_retries(flaky, base=0.01, cap=0.05) == "ok"
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.29  # waited at least Retry-After


async def test_with_retries_gives_up_at_once_on_a_client_error() -> None:
    calls = 0

    async def invalid() -> None:
        nonlocal calls
        calls += 1
        raise ApiError(422, "Invalid", "spec.replicas: must be >= 0")

    with pytest.raises(ApiError):
        await with_retries(invalid)
    assert calls == 1


@pytest.mark.parametrize(
    "message",
    [
        # What the API server (v1.35, the sim) answers a server-side apply of `cpu: lots`, verbatim.
        "failed to convert new object (default/x; apps/v1, Kind=StatefulSet) to proper version: unable to "
        "convert unstructured object to apps/v1, Kind=StatefulSet: quantities must match the regular "
        "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        "unable to convert unstructured object to apps/v1, Kind=StatefulSet",
    ],
)
def test_a_500_that_is_a_conversion_failure_is_not_retried(message: str) -> None:
    exc = ApiError(500, "", message)
    assert not is_retryable(exc)
    assert "cannot be converted" in describe(exc) and message in describe(exc)


def test_a_plain_500_is_retried() -> None:
    assert is_retryable(ApiError(500, "InternalError", "etcdserver: request timed out"))
