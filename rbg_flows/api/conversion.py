"""Conversion between workloads.x-k8s.io/v1alpha1 and v1alpha2, on the JSON objects a
ConversionReview carries (pure; the webhook process only wraps `convert`).

Lossless both ways: v1alpha1 -> v1alpha2 -> v1alpha1 and v1alpha2 -> v1alpha1 -> v1alpha2 give back
the object they started from. Most fields map one to one (shared sub-models, see `v1alpha2.py`); the
rest is a handful of *lenses*, each a pair of functions between the part of an object one version
spells differently from the other (a role's workload kind and its pattern, gang scheduling, exclusive
topology, a set's group template). When the other version cannot say a part exactly, for instance a
v1alpha2 role without a workload-type annotation, whose v1alpha1 form must name a workload, the part's
own form is kept in an annotation `conversion.workloads.x-k8s.io/<its version>-<lens>` of the converted
object and taken back on the return trip, but only while it still converts to what the object says:
a field edited in the other version wins over the kept copy. Kept copies live in the object's
metadata.annotations, never in a role's (those are copied onto pods).

Conversion never fails on what the API server admits (a failure would make the object, and every
list that includes it, unreadable in the other version): a kept copy that does not parse is ignored.
`ConversionError` is for input no CRD admits (not an object, an unknown kind or version).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import StrictStr, TypeAdapter

from rbg_flows.api import v1alpha2
from rbg_flows.api.common import API_VERSION, API_VERSION_V1ALPHA2, GROUP
from rbg_flows.api.keys import (
    CONVERSION_PREFIX,
    EXCLUSIVE_TOPOLOGY_ANNOTATION,
    GANG_SCHEDULING_ANNOTATION,
    GANG_SCHEDULING_TIMEOUT_ANNOTATION,
    GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION,
    GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION,
    GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION,
    ROLE_WORKLOAD_TYPE_ANNOTATION,
)
from rbg_flows.api.rbg import PodGroupPolicy, RoleSpec

V1ALPHA1: Final = API_VERSION
V1ALPHA2: Final = API_VERSION_V1ALPHA2
API_VERSIONS: Final = (V1ALPHA1, V1ALPHA2)
KINDS: Final = (
    "RoleBasedGroup",
    "RoleBasedGroupSet",
    "RoleBasedGroupScalingAdapter",
    "ClusterEngineRuntimeProfile",
)

GANG_ANNOTATIONS: Final = (
    GANG_SCHEDULING_ANNOTATION,
    GANG_SCHEDULING_TIMEOUT_ANNOTATION,
    GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION,
    GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION,
)
# The reference's scheduler-plugins default, for a v1alpha2 group asking for gang scheduling without a
# timeout.
DEFAULT_GANG_TIMEOUT_SECONDS: Final = 60

_STATEFULSET: Final = {"apiVersion": "apps/v1", "kind": "StatefulSet"}
_LEADERWORKERSET: Final = {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet"}

# v1alpha1 leaderWorkerSet field -> v1alpha2 leaderWorkerPattern field (others keep their name).
_LWS_RENAMES: Final = {
    "patchLeaderTemplate": "leaderTemplatePatch",
    "patchWorkerTemplate": "workerTemplatePatch",
}
_LWS_RENAMES_BACK: Final = {v2: v1 for v1, v2 in _LWS_RENAMES.items()}
_TEMPLATE_SOURCE: Final = ("template", "templateRef")
_RESTART: Final = ("restartPolicy", "restartPolicyConfig")
_PATTERNS: Final = ("standalonePattern", "leaderWorkerPattern", "customComponentsPattern")
# Role fields each lens owns; every other field of a role is the same in both versions.
_V1_ROLE_PATTERN: Final = (
    *_TEMPLATE_SOURCE,
    "templatePatch",
    "leaderWorkerSet",
    "components",
    *_RESTART,
)
_V1_ROLE_WORKLOAD: Final = ("workload", "annotations")
_V2_ROLE_WORKLOAD: Final = ("annotations",)
# The same for the group's parts (gang scheduling, a set's group template).
_V1_GANG: Final = ("podGroupPolicy", *GANG_ANNOTATIONS)
_V1_GROUP_TEMPLATE: Final = ("podGroupPolicy",)
_V2_GROUP_TEMPLATE: Final = ("labels", "annotations")

_DECIMAL = re.compile(r"[0-9]+")

Part = dict[str, Any]
"""The fields of an object (or of a role) that one lens owns, by name; absent fields are absent."""


class ConversionError(ValueError):
    """Input that cannot be converted, with the path of the offending field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def convert(obj: Mapping[str, Any], to_api_version: str) -> dict[str, Any]:
    """`obj` (any served version of any of our kinds) in `to_api_version`; a new object, `obj` is not
    changed."""
    if not isinstance(obj, Mapping):
        raise ConversionError("<root>", "must be an object")
    if to_api_version not in API_VERSIONS:
        raise ConversionError("<to>", f"unknown apiVersion {to_api_version!r}: want one of {API_VERSIONS}")
    from_api_version = obj.get("apiVersion")
    if from_api_version not in API_VERSIONS:
        raise ConversionError("apiVersion", f"{from_api_version!r} is not one of {API_VERSIONS}")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise ConversionError("kind", f"{kind!r} is not one of {KINDS} of {GROUP}")
    out = _json_copy(obj)
    if from_api_version == to_api_version:
        return out
    out["apiVersion"] = to_api_version
    up = to_api_version == V1ALPHA2
    if kind == "RoleBasedGroup":
        return _rbg_up(out) if up else _rbg_down(out)
    if kind == "RoleBasedGroupSet":
        return _rbgs_up(out) if up else _rbgs_down(out)
    # The scaling adapter and the engine runtime profile are the same in both versions.
    return out


def _json_copy(obj: Mapping[str, Any]) -> dict[str, Any]:
    # A JSON round trip copies a JSON object several times faster than deepcopy (most of a conversion's
    # time: the webhook converts every object of a list); anything else is copied as it is.
    try:
        copied: dict[str, Any] = json.loads(json.dumps(obj))
    except (TypeError, ValueError):
        copied = copy.deepcopy(dict(obj))
    return copied


def to_internal(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The orchestrator's one form of an object: v1alpha1."""
    return convert(obj, V1ALPHA1)


def internal_form(obj: Mapping[str, Any]) -> dict[str, Any]:
    """`to_internal`, or the object as it is when it does not convert: parsing it then names the offending
    field (InvalidSpec), as for any bad spec, instead of an exception far from the user's object."""
    try:
        return to_internal(obj)
    except ConversionError:
        return dict(obj)


# --- the lens mechanism -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Lens:
    """Two functions between the v1alpha1 and v1alpha2 forms of one part of an object."""

    name: str
    up: Callable[[Part], Part]
    down: Callable[[Part], Part]


@dataclass(frozen=True)
class _Form:
    """The fields a lens owns in one version, and a check that a kept copy is their valid form there
    (raising ValueError), so an edited copy cannot bring fields or values of its own."""

    owned: tuple[str, ...]
    check: Callable[[Part], object]


def _carry(
    part: Part,
    there: Callable[[Part], Part],
    back: Callable[[Part], Part],
    kept: Any,
    form: _Form,
) -> tuple[Part, Part | None]:
    """`part` in the other version, and what the other version must keep to give `part` back (None when
    converting back gives it anyway). `kept` is the other version's form (`form`) kept on `part`'s
    object by the conversion that made it: used while it still converts to `part`."""
    if isinstance(kept, dict) and set(kept) <= set(form.owned):
        try:
            form.check(kept)
            still = back(kept) == part
        # A kept copy edited into another shape is ignored, as one that does not parse.
        except (ValueError, TypeError, AttributeError, KeyError):
            still = False
        if still:
            return copy.deepcopy(kept), None
    out = there(part)
    return out, (None if back(out) == part else copy.deepcopy(part))


def _kept_key(api_version: str, lens: str) -> str:
    return f"{CONVERSION_PREFIX}{api_version.rsplit('/', 1)[-1]}-{lens}"


_WORKLOAD: Final = "workload"
_GROUP_LENSES: Final = ("gang-scheduling", "exclusive-topology", "group-template")
_ROLE_LENSES: Final = (_WORKLOAD, "pattern")


class _Kept:
    """Kept copies read from (and removed from) the source object's annotations, and those the
    converted object gets."""

    def __init__(self, annotations: dict[str, str], source_version: str, target_version: str) -> None:
        self.found: dict[str, Any] = {}
        for lens in (*_GROUP_LENSES, *_ROLE_LENSES):
            raw = annotations.pop(_kept_key(target_version, lens), None)
            if raw is None:
                continue
            try:
                self.found[lens] = json.loads(raw)
            except ValueError:
                continue
        # Copies this conversion writes are in the source version's form.
        self.source_version = source_version
        self.made: dict[str, Any] = {}

    def group(self, lens: str) -> Any:
        return self.found.get(lens)

    def role(self, lens: str, role: str) -> Any:
        roles = self.found.get(lens)
        return roles.get(role) if isinstance(roles, dict) else None

    def keep_group(self, lens: str, part: Part | None) -> None:
        if part is not None:
            self.made[lens] = part

    def keep_role(self, lens: str, role: str, part: Part | None) -> None:
        if part is not None:
            self.made.setdefault(lens, {})[role] = part

    def write(self, annotations: dict[str, str]) -> None:
        for lens, part in self.made.items():
            annotations[_kept_key(self.source_version, lens)] = json.dumps(
                part, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )


# --- gang scheduling: v1alpha1 spec.podGroupPolicy <-> v1alpha2 group annotations ------------


def _gang_annotations(policy: Any) -> dict[str, str]:
    """The reference's translation: kubeScheduling wins over volcanoScheduling."""
    if not isinstance(policy, dict):
        return {}
    kube, volcano = policy.get("kubeScheduling"), policy.get("volcanoScheduling")
    if isinstance(kube, dict):
        out = {GANG_SCHEDULING_ANNOTATION: "true"}
        timeout = kube.get("scheduleTimeoutSeconds")
        if isinstance(timeout, int) and not isinstance(timeout, bool):
            out[GANG_SCHEDULING_TIMEOUT_ANNOTATION] = str(timeout)
        return out
    if isinstance(volcano, dict):
        out = {GANG_SCHEDULING_ANNOTATION: "true"}
        for field, key in (
            ("queue", GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION),
            ("priorityClassName", GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION),
        ):
            if isinstance(volcano.get(field), str) and volcano[field]:
                out[key] = volcano[field]
        return out
    return {}


def _gang_policy(annotations: Mapping[str, Any]) -> dict[str, Any] | None:
    """The v1alpha1 podGroupPolicy the gang annotations ask for: Volcano when a Volcano key is set,
    scheduler-plugins otherwise (the reference picks by a controller flag; its default is the latter)."""
    if annotations.get(GANG_SCHEDULING_ANNOTATION) != "true":
        return None
    volcano = {
        field: annotations[key]
        for field, key in (
            ("queue", GANG_SCHEDULING_VOLCANO_QUEUE_ANNOTATION),
            ("priorityClassName", GANG_SCHEDULING_VOLCANO_PRIORITY_ANNOTATION),
        )
        if key in annotations
    }
    if volcano:
        return {"volcanoScheduling": volcano}
    timeout = annotations.get(GANG_SCHEDULING_TIMEOUT_ANNOTATION)
    seconds = (
        int(timeout)
        if isinstance(timeout, str) and _DECIMAL.fullmatch(timeout)
        else DEFAULT_GANG_TIMEOUT_SECONDS
    )
    return {"kubeScheduling": {"scheduleTimeoutSeconds": seconds}}


def _gang_up(part: Part) -> Part:
    return dict(_gang_annotations(part.get("podGroupPolicy")))


def _gang_down(part: Part) -> Part:
    policy = _gang_policy(part)
    return {} if policy is None else {"podGroupPolicy": policy}


_GANG = _Lens("gang-scheduling", _gang_up, _gang_down)


# --- exclusive topology: v1alpha1 and v1alpha2 spell the group annotation differently --------


def _exclusive_up(part: Part) -> Part:
    # v1alpha1's spelling wins, as in the reference; v1alpha2's, which the orchestrator also reads on a
    # v1alpha1 object, stays what it says.
    value = part.get(EXCLUSIVE_TOPOLOGY_ANNOTATION, part.get(GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION))
    return {} if value is None else {GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION: value}


def _exclusive_down(part: Part) -> Part:
    new = part.get(GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION)
    return {} if new is None else {EXCLUSIVE_TOPOLOGY_ANNOTATION: new}


_EXCLUSIVE = _Lens("exclusive-topology", _exclusive_up, _exclusive_down)
_EXCLUSIVE_KEYS: Final = (EXCLUSIVE_TOPOLOGY_ANNOTATION, GROUP_EXCLUSIVE_TOPOLOGY_ANNOTATION)


# --- a set's group template: v1alpha1 has only the spec, v1alpha2 labels and annotations too ----


def _group_template_up(part: Part) -> Part:
    annotations = _gang_annotations(part.get("podGroupPolicy"))
    return {"annotations": annotations} if annotations else {}


def _group_template_down(part: Part) -> Part:
    annotations = part.get("annotations")
    return _gang_down(annotations) if isinstance(annotations, dict) else {}


_GROUP_TEMPLATE = _Lens("group-template", _group_template_up, _group_template_down)


# --- a role's workload: v1alpha1 spec.roles[].workload <-> v1alpha2 role annotation ------------


def _workload_type(workload: Any) -> str | None:
    if not isinstance(workload, dict):
        return None
    api_version = workload.get("apiVersion", _STATEFULSET["apiVersion"])
    kind = workload.get("kind", _STATEFULSET["kind"])
    return f"{api_version}/{kind}" if api_version else str(kind)


def _workload(workload_type: str) -> dict[str, str]:
    # apiVersion holds a '/' itself: split at the last one.
    api_version, _, kind = workload_type.rpartition("/")
    return {"apiVersion": api_version, "kind": kind}


def _workload_up(part: Part) -> Part:
    annotations = dict(part.get("annotations") or {})
    workload_type = _workload_type(part.get("workload"))
    if workload_type is not None:
        annotations[ROLE_WORKLOAD_TYPE_ANNOTATION] = workload_type
    return {"annotations": annotations} if annotations or "annotations" in part else {}


def _workload_down(leader_worker: bool) -> Callable[[Part], Part]:
    """Without the annotation, the workload of the pattern: the reference's default, RoleInstanceSet,
    is not served here (docs/api.md, Versions)."""

    def down(part: Part) -> Part:
        annotations = dict(part.get("annotations") or {})
        workload_type = annotations.pop(ROLE_WORKLOAD_TYPE_ANNOTATION, None)
        if isinstance(workload_type, str):
            workload = _workload(workload_type)
        else:
            workload = dict(_LEADERWORKERSET if leader_worker else _STATEFULSET)
        out: Part = {"workload": workload}
        if annotations:
            out["annotations"] = annotations
        return out

    return down


# --- a role's pattern: v1alpha1's flat fields <-> v1alpha2's three patterns --------------------


def _pattern_up(part: Part) -> Part:
    source: Part = {key: part[key] for key in ("template",) if key in part}
    if isinstance(part.get("templateRef"), dict):
        ref = dict(part["templateRef"])
        if "templatePatch" in part:
            ref["patch"] = part["templatePatch"]
        source["templateRef"] = ref
    restart = {key: part[key] for key in _RESTART if key in part}
    lws = part.get("leaderWorkerSet")
    components = {"components": part["components"]} if "components" in part else None
    if isinstance(lws, dict):
        pattern = {_LWS_RENAMES.get(key, key): value for key, value in lws.items()}
        out: Part = {"leaderWorkerPattern": {**pattern, **source, **restart}}
        if components is not None:
            out["customComponentsPattern"] = components
        return out
    if components is not None:
        out = {"customComponentsPattern": {**components, **restart}}
        if source:
            out["standalonePattern"] = source
        return out
    return {"standalonePattern": {**source, **restart}}


def _pattern_down(part: Part) -> Part:
    standalone, lwp, custom = (part[name] if isinstance(part.get(name), dict) else None for name in _PATTERNS)
    out: Part = {}
    source = lwp if lwp is not None else standalone
    if source is not None:
        if "template" in source:
            out["template"] = source["template"]
        if isinstance(source.get("templateRef"), dict):
            ref = dict(source["templateRef"])
            if "patch" in ref:
                out["templatePatch"] = ref.pop("patch")
            out["templateRef"] = ref
    if lwp is not None:
        out["leaderWorkerSet"] = {
            _LWS_RENAMES_BACK.get(key, key): value
            for key, value in lwp.items()
            if key not in _TEMPLATE_SOURCE and key not in _RESTART
        }
    if custom is not None and "components" in custom:
        out["components"] = custom["components"]
    holder = next((p for p in (lwp, custom, standalone) if p is not None), None)
    if holder is not None:
        out.update({key: holder[key] for key in _RESTART if key in holder})
    return out


_PATTERN = _Lens("pattern", _pattern_up, _pattern_down)


# --- what a kept copy may hold ------------------------------------------------------------------

_STRING_MAP = TypeAdapter(dict[str, StrictStr])


def _role_form(model: type[RoleSpec] | type[v1alpha2.RoleSpec], owned: tuple[str, ...]) -> _Form:
    return _Form(owned, lambda part: model.model_validate({"name": "kept", **part}))


def _gang_check(part: Part) -> None:
    PodGroupPolicy.model_validate(part.get("podGroupPolicy", {}))
    _STRING_MAP.validate_python({key: value for key, value in part.items() if key != "podGroupPolicy"})


def _group_template_check(part: Part) -> None:
    for key in _V2_GROUP_TEMPLATE:
        _STRING_MAP.validate_python(part.get(key, {}))


_V1_PATTERN = _role_form(RoleSpec, _V1_ROLE_PATTERN)
_V2_PATTERN = _role_form(v1alpha2.RoleSpec, _PATTERNS)
_V1_WORKLOAD = _role_form(RoleSpec, _V1_ROLE_WORKLOAD)
_V2_WORKLOAD = _role_form(v1alpha2.RoleSpec, _V2_ROLE_WORKLOAD)
_V1_GANG_FORM = _Form(_V1_GANG, _gang_check)
_V2_GANG_FORM = _Form(GANG_ANNOTATIONS, _STRING_MAP.validate_python)
_EXCLUSIVE_FORM = _Form(_EXCLUSIVE_KEYS, _STRING_MAP.validate_python)
_V1_GROUP_TEMPLATE_FORM = _Form(_V1_GROUP_TEMPLATE, _gang_check)
_V2_GROUP_TEMPLATE_FORM = _Form(_V2_GROUP_TEMPLATE, _group_template_check)


# --- roles and specs --------------------------------------------------------------------------


def _split(obj: dict[str, Any], keys: tuple[str, ...]) -> Part:
    return {key: obj.pop(key) for key in keys if key in obj}


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConversionError(path, "must be an object")
    return value


def _role_name(role: dict[str, Any], path: str) -> str:
    name = role.get("name")
    if not isinstance(name, str):
        raise ConversionError(f"{path}.name", "required")
    return name


def _role_up(role: dict[str, Any], path: str, kept: _Kept) -> dict[str, Any]:
    name = _role_name(role, path)
    pattern, keep = _carry(
        _split(role, _V1_ROLE_PATTERN),
        _PATTERN.up,
        _PATTERN.down,
        kept.role(_PATTERN.name, name),
        _V2_PATTERN,
    )
    kept.keep_role(_PATTERN.name, name, keep)
    down = _workload_down("leaderWorkerPattern" in pattern)
    workload, keep = _carry(
        _split(role, _V1_ROLE_WORKLOAD), _workload_up, down, kept.role(_WORKLOAD, name), _V2_WORKLOAD
    )
    kept.keep_role(_WORKLOAD, name, keep)
    return {**role, **workload, **pattern}


def _role_down(role: dict[str, Any], path: str, kept: _Kept) -> dict[str, Any]:
    name = _role_name(role, path)
    leader_worker = isinstance(role.get("leaderWorkerPattern"), dict)
    pattern, keep = _carry(
        _split(role, _PATTERNS), _PATTERN.down, _PATTERN.up, kept.role(_PATTERN.name, name), _V1_PATTERN
    )
    kept.keep_role(_PATTERN.name, name, keep)
    down = _workload_down(leader_worker)
    workload, keep = _carry(
        _split(role, _V2_ROLE_WORKLOAD), down, _workload_up, kept.role(_WORKLOAD, name), _V1_WORKLOAD
    )
    kept.keep_role(_WORKLOAD, name, keep)
    return {**role, **workload, **pattern}


def _roles(spec: dict[str, Any], path: str, kept: _Kept, up: bool) -> None:
    roles = spec.get("roles")
    if roles is None:
        return
    if not isinstance(roles, list):
        raise ConversionError(f"{path}.roles", "must be a list")
    convert_role = _role_up if up else _role_down
    spec["roles"] = [
        convert_role(_mapping(role, f"{path}.roles[{i}]"), f"{path}.roles[{i}]", kept)
        for i, role in enumerate(roles)
    ]


def _metadata(obj: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    metadata = _mapping(obj.setdefault("metadata", {}), "metadata")
    annotations = metadata.get("annotations") or {}
    return metadata, dict(_mapping(annotations, "metadata.annotations"))


def _set_annotations(metadata: dict[str, Any], annotations: dict[str, str]) -> None:
    # ObjectMeta omits an empty map: absent and {} are the same object.
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)


def _rbg_up(obj: dict[str, Any]) -> dict[str, Any]:
    metadata, annotations = _metadata(obj)
    kept = _Kept(annotations, V1ALPHA1, V1ALPHA2)
    spec = _mapping(obj.get("spec", {}), "spec")
    gang_part = {**_split(spec, ("podGroupPolicy",)), **_split(annotations, GANG_ANNOTATIONS)}
    gang, keep = _carry(gang_part, _GANG.up, _GANG.down, kept.group(_GANG.name), _V2_GANG_FORM)
    kept.keep_group(_GANG.name, keep)
    exclusive, keep = _carry(
        _split(annotations, _EXCLUSIVE_KEYS),
        _EXCLUSIVE.up,
        _EXCLUSIVE.down,
        kept.group(_EXCLUSIVE.name),
        _EXCLUSIVE_FORM,
    )
    kept.keep_group(_EXCLUSIVE.name, keep)
    _roles(spec, "spec", kept, up=True)
    annotations.update(gang)
    annotations.update(exclusive)
    kept.write(annotations)
    _set_annotations(metadata, annotations)
    return obj


def _rbg_down(obj: dict[str, Any]) -> dict[str, Any]:
    metadata, annotations = _metadata(obj)
    kept = _Kept(annotations, V1ALPHA2, V1ALPHA1)
    spec = _mapping(obj.get("spec", {}), "spec")
    gang, keep = _carry(
        _split(annotations, GANG_ANNOTATIONS), _GANG.down, _GANG.up, kept.group(_GANG.name), _V1_GANG_FORM
    )
    kept.keep_group(_GANG.name, keep)
    exclusive, keep = _carry(
        _split(annotations, _EXCLUSIVE_KEYS),
        _EXCLUSIVE.down,
        _EXCLUSIVE.up,
        kept.group(_EXCLUSIVE.name),
        _EXCLUSIVE_FORM,
    )
    kept.keep_group(_EXCLUSIVE.name, keep)
    _roles(spec, "spec", kept, up=False)
    if "podGroupPolicy" in gang:
        spec["podGroupPolicy"] = gang.pop("podGroupPolicy")
    annotations.update(gang)
    annotations.update(exclusive)
    kept.write(annotations)
    _set_annotations(metadata, annotations)
    return obj


def _rbgs_up(obj: dict[str, Any]) -> dict[str, Any]:
    metadata, annotations = _metadata(obj)
    kept = _Kept(annotations, V1ALPHA1, V1ALPHA2)
    spec = _mapping(obj.get("spec", {}), "spec")
    if "template" in spec:
        template = _mapping(spec.pop("template"), "spec.template")
        group, keep = _carry(
            _split(template, ("podGroupPolicy",)),
            _GROUP_TEMPLATE.up,
            _GROUP_TEMPLATE.down,
            kept.group(_GROUP_TEMPLATE.name),
            _V2_GROUP_TEMPLATE_FORM,
        )
        kept.keep_group(_GROUP_TEMPLATE.name, keep)
        _roles(template, "spec.template", kept, up=True)
        spec["groupTemplate"] = {**group, "spec": template}
    kept.write(annotations)
    _set_annotations(metadata, annotations)
    return obj


def _rbgs_down(obj: dict[str, Any]) -> dict[str, Any]:
    metadata, annotations = _metadata(obj)
    kept = _Kept(annotations, V1ALPHA2, V1ALPHA1)
    spec = _mapping(obj.get("spec", {}), "spec")
    if "groupTemplate" in spec:
        group_template = _mapping(spec.pop("groupTemplate"), "spec.groupTemplate")
        template = _mapping(group_template.pop("spec", {}), "spec.groupTemplate.spec")
        group, keep = _carry(
            group_template,
            _GROUP_TEMPLATE.down,
            _GROUP_TEMPLATE.up,
            kept.group(_GROUP_TEMPLATE.name),
            _V1_GROUP_TEMPLATE_FORM,
        )
        kept.keep_group(_GROUP_TEMPLATE.name, keep)
        _roles(template, "spec.groupTemplate.spec", kept, up=False)
        spec["template"] = {**template, **group}
    kept.write(annotations)
    _set_annotations(metadata, annotations)
    return obj
