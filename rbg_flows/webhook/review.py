"""A ConversionReview (`apiextensions.k8s.io/v1`) in, its answer out (pure: the converter is passed in).

The API server sends one review per read or write that meets a stored object of another version: one
object, or every object of a list. The answer converts all of them or none: the first object that cannot
be converted fails the review, with a message naming the object and why, which the API server returns to
the client inside its own error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REVIEW_API_VERSION = "apiextensions.k8s.io/v1"
REVIEW_KIND = "ConversionReview"

Converter = Callable[[dict[str, Any], str], dict[str, Any]]


class InvalidReview(ValueError):
    """Not a ConversionReview this webhook can answer (no request uid to answer to): HTTP 400."""


@dataclass(frozen=True)
class Outcome:
    """One object's conversion, for the metrics."""

    kind: str
    from_version: str
    to_version: str
    ok: bool


@dataclass(frozen=True)
class Reviewed:
    response: dict[str, Any]
    outcomes: list[Outcome] = field(default_factory=list)
    # Set when the review failed: what the response's result says, for the log.
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


def describe(obj: dict[str, Any]) -> str:
    """`RoleBasedGroup default/pd` (cluster-scoped: `Kind name`), as a message names an object."""
    meta: dict[str, Any] = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    name = str(meta.get("name") or "<unnamed>")
    ns = meta.get("namespace")
    return (
        f"{obj.get('kind') or '<no kind>'} {ns}/{name}" if ns else f"{obj.get('kind') or '<no kind>'} {name}"
    )


def _answer(uid: str, converted: list[dict[str, Any]] | None, failure: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid}
    if failure is None:
        response["convertedObjects"] = converted or []
        response["result"] = {"status": "Success"}
    else:
        response["result"] = {"status": "Failure", "message": failure}
    return {"apiVersion": REVIEW_API_VERSION, "kind": REVIEW_KIND, "response": response}


def _failed(uid: str, message: str, outcomes: list[Outcome]) -> Reviewed:
    return Reviewed(_answer(uid, None, message), outcomes, message)


def request_of(body: Any) -> dict[str, Any]:
    """The review's `request`, or InvalidReview when there is none to answer."""
    if not isinstance(body, dict):
        raise InvalidReview("the body is not a JSON object")
    if body.get("kind") != REVIEW_KIND or body.get("apiVersion") != REVIEW_API_VERSION:
        raise InvalidReview(
            f"expected {REVIEW_API_VERSION} {REVIEW_KIND}, got {body.get('apiVersion')} {body.get('kind')}"
        )
    request = body.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str) or not request["uid"]:
        raise InvalidReview("the ConversionReview has no request.uid")
    return request


def review(body: Any, convert: Converter, errors: tuple[type[Exception], ...]) -> Reviewed:
    """Answer the review in `body`. `errors` are the converter's refusals of an object (their message is
    the client's); any other exception from it is a bug, reported as an internal error."""
    request = request_of(body)
    uid: str = request["uid"]
    desired = request.get("desiredAPIVersion")
    objects = request.get("objects")
    if not isinstance(desired, str) or "/" not in desired:
        return _failed(uid, f"request.desiredAPIVersion {desired!r} is not group/version", [])
    if not isinstance(objects, list):
        return _failed(uid, "request.objects is not a list", [])
    converted: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    for index, obj in enumerate(objects):
        if not isinstance(obj, dict):
            return _failed(uid, f"request.objects[{index}] is not an object", outcomes)
        kind, version = str(obj.get("kind") or ""), str(obj.get("apiVersion") or "")
        try:
            converted.append(convert(obj, desired))
        except errors as e:
            failure = f"{describe(obj)}: cannot convert {version} to {desired}: {e}"
        except Exception as e:  # a converter bug must fail the review, not the server
            failure = (
                f"{describe(obj)}: internal error converting {version} to {desired}: {type(e).__name__}: {e}"
            )
        else:
            outcomes.append(Outcome(kind, version, desired, ok=True))
            continue
        return _failed(uid, failure, [*outcomes, Outcome(kind, version, desired, ok=False)])
    return Reviewed(_answer(uid, converted, None), outcomes)
