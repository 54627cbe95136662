"""Building blocks shared by the three kinds: the base model, Kubernetes value conventions
(int-or-string, free-form objects, timestamps), object metadata and conditions.

Every constraint a model enforces is also emitted into the CRD schema (see `crd.py`), so whatever the
API server admits always parses here; the reverse is what `validation.py` is for.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)
from pydantic.alias_generators import to_camel

GROUP: Final = "workloads.x-k8s.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = "workloads.x-k8s.io/v1alpha1"
# v1alpha2 is served beside v1alpha1 (and stored); the orchestrator works on the v1alpha1 form.
VERSION_V1ALPHA2: Final = "v1alpha2"
API_VERSION_V1ALPHA2: Final = "workloads.x-k8s.io/v1alpha2"

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Any whole percentage, as Kubernetes' own int-or-percent fields accept (maxSurge may exceed 100%).
PERCENT_PATTERN = r"^[0-9]+%$"
# Coordination fields are fractions of a role, so they stop at 100%.
PERCENT_UPTO_100_PATTERN = r"^(100|[1-9]?[0-9])%$"

_DNS1123_LABEL = re.compile(DNS1123_LABEL_PATTERN)


def is_dns1123_label(value: str) -> bool:
    return len(value) <= DNS1123_LABEL_MAX_LENGTH and _DNS1123_LABEL.match(value) is not None


def workload_name(rbg_name: str, role_name: str) -> str:
    """Name of a role's workload and scaling adapter (and of its headless Service before RBG v0.5)."""
    return f"{rbg_name}-{role_name}"


def service_name(rbg_name: str, role_name: str) -> str:
    """Name of a role's headless Service since RBG v0.5: `s-<rbg>-<role>`, because a Service name is a
    DNS-1035 label (it may not start with a digit) and `<rbg>-<role>` may. Cut to 63 characters with
    trailing '-' trimmed, as the reference does, so the name stays valid however long the group's is."""
    return f"s-{rbg_name}-{role_name}"[:DNS1123_LABEL_MAX_LENGTH].rstrip("-")


def address_service_name(rbg_name: str, role_name: str, *, leader_worker_set: bool) -> str:
    """The Service an instance's DNS name goes through (`<rbg>-<role>-<i>.<this>`): a LeaderWorkerSet's
    own Service, named after it (`<rbg>-<role>`), for a LeaderWorkerSet role, else the role's headless
    Service, as the reference resolves it since v0.5."""
    return workload_name(rbg_name, role_name) if leader_worker_set else service_name(rbg_name, role_name)


class KubeModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused (as the CRD schema does).

    Collections that default to empty and were never given are left out of dumps, so a parsed
    manifest dumps back to what the API server stores (it has no defaults for lists or maps) and
    not to a wall of `[]` and `{}`.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    # (field name, keys it may be dumped under: by name or by alias)
    _implicit_empty_keys: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._implicit_empty_keys = tuple(
            (name, (name, info.alias or name))
            for name, info in cls.model_fields.items()
            if info.default_factory in (list, dict)
        )

    @model_serializer(mode="wrap")
    def _omit_implicit_empty(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, keys in self._implicit_empty_keys:
            if name in self.model_fields_set:
                continue
            for key in keys:
                # Only drop still-empty collections: code may have appended to a defaulted one.
                if key in data and not data[key]:
                    del data[key]
        return data


def _int_or_string(value: Any) -> int | str:
    # bool is an int to Python but not to Kubernetes.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a string")
    return value


def _int_or_percent(pattern: str) -> PlainValidator:
    compiled = re.compile(pattern)

    def check(raw: Any) -> int | str:
        value = _int_or_string(raw)
        if isinstance(value, int):
            if value < 0:
                raise ValueError("must be greater than or equal to 0")
        elif not compiled.match(value):
            raise ValueError(f"must be an integer or a percentage matching {pattern}")
        return value

    return PlainValidator(check)


IntOrString = Annotated[
    int | str,
    PlainValidator(_int_or_string),
    WithJsonSchema({"x-kubernetes-int-or-string": True}),
]
"""Kubernetes intstr.IntOrString: any integer or string."""

IntOrPercent = Annotated[
    int | str,
    _int_or_percent(PERCENT_PATTERN),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "minimum": 0, "pattern": PERCENT_PATTERN}),
]
"""A non-negative count or a percentage like "25%" (of the role's replicas)."""

IntOrPercentUpTo100 = Annotated[
    int | str,
    _int_or_percent(PERCENT_UPTO_100_PATTERN),
    WithJsonSchema({"x-kubernetes-int-or-string": True, "minimum": 0, "pattern": PERCENT_UPTO_100_PATTERN}),
]
"""A non-negative count or a percentage from "0%" to "100%"."""

FreeForm = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
"""A Kubernetes object kept verbatim (pod templates, patches, containers): validated by the API server
when the workload that embeds it is applied, not by this CRD, which stays small that way."""


def _format_time(value: datetime) -> str:
    # metav1.Time is second-precision RFC 3339 in UTC; writing the same form keeps patches no-ops.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


KubeTime = Annotated[
    datetime,
    PlainSerializer(_format_time, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""metav1.Time; naive datetimes are taken as UTC."""

NonNegativeInt = Annotated[int, Field(ge=0)]
DnsLabel = Annotated[
    str, Field(min_length=1, max_length=DNS1123_LABEL_MAX_LENGTH, pattern=DNS1123_LABEL_PATTERN)
]


def list_map(*keys: str) -> dict[str, Any]:
    """Schema extras for a list merged by key (server-side apply, strategic merge, duplicate check)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


LIST_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}


class ObjectMeta(KubeModel):
    """The part of metav1.ObjectMeta this project reads; everything else is kept as is."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)
    owner_references: list[dict[str, Any]] = Field(default_factory=list)


ConditionStatus = Literal["True", "False", "Unknown"]

# The constraints metav1.Condition carries in every Kubernetes API.
_CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class Condition(KubeModel):
    """A standard metav1.Condition."""

    type: Annotated[str, Field(max_length=316, pattern=_CONDITION_TYPE_PATTERN)]
    """Condition type in CamelCase, e.g. Ready."""
    status: ConditionStatus
    """True, False or Unknown."""
    observed_generation: NonNegativeInt | None = None
    """The .metadata.generation this condition was set for."""
    last_transition_time: KubeTime
    """When the status last changed."""
    reason: Annotated[str, Field(min_length=1, max_length=1024, pattern=_CONDITION_REASON_PATTERN)]
    """Programmatic identifier of the last transition, in CamelCase."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """Human-readable details."""
