"""Which Kubernetes API failures are worth retrying, and how long to wait before the next try."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from rbg_flows.kube.client import ApiError

T = TypeVar("T")

# 400 bad request, 403 forbidden, 404 not found, 405, 410 (handled by watchers), 422 invalid: the same
# request would fail again, so the caller needs a clear message, not a retry.
NON_RETRYABLE = frozenset({400, 401, 403, 404, 405, 415, 422})
RETRYABLE = frozenset({409, 429, 500, 502, 503, 504})


# A 500 is usually the server's trouble, but the API server also answers 500 when it cannot convert or
# validate what it was sent (a quantity like `cpu: lots` that a CRD's free-form template let through
# reaches server-side apply, which fails building the typed object). Sending the same body again fails
# the same way forever, so those are refused like a 422. Matched on the server's own wording.
_UNCURABLE_500 = (
    "failed to convert new object",
    "quantities must match the regular expression",
    "failed to create typed patch object",
    "failed to create typed live object",
    "unable to convert",
    "converting (",
    "cannot convert",
    "json: cannot unmarshal",
    "unrecognized type",
    "is invalid",
)


def is_uncurable(exc: ApiError) -> bool:
    """A server error whose message says the request itself is wrong (retrying cannot help)."""
    message = exc.message.lower()
    return exc.status == 500 and any(fragment in message for fragment in _UNCURABLE_500)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ApiError):
        return exc.status in RETRYABLE and not is_uncurable(exc)
    return isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError)


def describe(exc: ApiError) -> str:
    """A message a user can act on: what the API server refused and why."""
    hint = {
        403: "the orchestrator's service account lacks RBAC permission for this request",
        404: "the resource or its API is not installed on this cluster",
        422: "the object is invalid",
    }.get(exc.status, "the object cannot be converted: fix the spec" if is_uncurable(exc) else "")
    status = f"{exc.status} {exc.reason}" if exc.reason else str(exc.status)
    return f"Kubernetes API {status}: {exc.message}" + (f" ({hint})" if hint else "")


class _WaitRetryAfter:
    """Exponential backoff with jitter, but never sooner than the server's Retry-After."""

    def __init__(self, base: float, cap: float):
        self._backoff = wait_random_exponential(multiplier=base, max=cap)

    def __call__(self, state: RetryCallState) -> float:
        delay = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ApiError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        return delay


async def with_retries(
    call: Callable[[], Awaitable[T]], *, attempts: int = 6, base: float = 0.2, cap: float = 10.0
) -> T:
    """Run `call`, retrying conflicts, throttling, server errors and network failures with backoff."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_retryable),
        stop=stop_after_attempt(attempts),
        wait=_WaitRetryAfter(base, cap),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")
