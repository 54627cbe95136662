"""`POST /convert`: the HTTP side of a ConversionReview (size limit, JSON, metrics, logs)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog
from aiohttp import web

from rbg_flows.observability.metrics import WEBHOOK_CONVERSIONS, WEBHOOK_REVIEW_DURATION
from rbg_flows.webhook.review import Converter, InvalidReview, Reviewed, review

log = structlog.get_logger(__name__)

CONVERT_PATH = "/convert"
# A review carries one object, or every object of a list the API server reads from storage (a LIST of
# groups that predate the storage version): 64 MiB holds thousands of groups (a few KB each) while
# bounding what one request can make the process hold (its JSON, parsed, is several times its size).
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024


def _record(reviewed: Reviewed) -> None:
    for o in reviewed.outcomes:
        WEBHOOK_CONVERSIONS.labels(
            o.kind, o.from_version, o.to_version, "success" if o.ok else "failure"
        ).inc()


def _parse_and_review(raw: bytes, convert: Converter, errors: tuple[type[Exception], ...]) -> Reviewed:
    try:
        body: Any = json.loads(raw)
    except ValueError as e:
        raise InvalidReview(f"the body is not JSON: {e}") from None
    return review(body, convert, errors)


def _refused(status: int, message: str, started: float, **context: object) -> web.Response:
    WEBHOOK_REVIEW_DURATION.labels("refused").observe(time.monotonic() - started)
    log.warning("conversion review refused", status=status, reason=message, **context)
    return web.json_response({"message": message}, status=status)


def conversion_app(
    convert: Converter,
    errors: tuple[type[Exception], ...],
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> web.Application:
    too_large = f"a ConversionReview larger than {max_request_bytes} bytes is refused (--max-request-bytes)"

    async def handle(request: web.Request) -> web.Response:
        started = time.monotonic()
        if request.content_length is not None and request.content_length > max_request_bytes:
            # Refused before a byte of the body is read.
            return _refused(413, too_large, started, bytes=request.content_length)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refused(413, too_large, started)
        try:
            # Parsing and converting thousands of objects takes a while: off the loop, so health probes
            # and other reviews are still answered meanwhile.
            reviewed = await asyncio.to_thread(_parse_and_review, raw, convert, errors)
        except InvalidReview as e:
            return _refused(400, str(e), started, bytes=len(raw))
        _record(reviewed)
        seconds = time.monotonic() - started
        WEBHOOK_REVIEW_DURATION.labels("success" if reviewed.ok else "failure").observe(seconds)
        uid = reviewed.response["response"]["uid"]
        if reviewed.ok:
            log.debug("converted", uid=uid, objects=len(reviewed.outcomes), seconds=round(seconds, 4))
        else:
            log.warning("conversion failed", uid=uid, reason=reviewed.failure, objects=len(reviewed.outcomes))
        return web.json_response(reviewed.response)

    app = web.Application(client_max_size=max_request_bytes)
    app.router.add_post(CONVERT_PATH, handle)
    return app
