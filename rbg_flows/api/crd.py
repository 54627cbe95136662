"""CustomResourceDefinitions generated from the models, so the schema is never written twice.

The pydantic JSON schema is rewritten into a Kubernetes structural schema: `$ref`s inlined (CRDs
cannot reference), `Optional[X]` collapsed to X (absent and null mean the same to the API server),
free-form objects marked `x-kubernetes-preserve-unknown-fields`, int-or-string in the one `anyOf` form
structural schemas allow. Anything else the converter does not know fails loudly instead of producing a
schema the API server might reject or, worse, accept with a different meaning.

    python -m rbg_flows.api.crd deploy/crds          # regenerate
    python -m rbg_flows.api.crd deploy/crds --check  # exit 1 when the files are stale

Versions: v1alpha2 is the storage version and v1alpha1 is served beside it, deprecated. The kinds
whose two versions differ (RoleBasedGroup, RoleBasedGroupSet) convert through the webhook
(`rbg_flows.api.conversion`); the two whose versions are the same schema (the scaling adapter and the
engine runtime profile) need no webhook: the API server only rewrites their apiVersion.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel

from rbg_flows.api import v1alpha2
from rbg_flows.api.common import GROUP, VERSION, VERSION_V1ALPHA2
from rbg_flows.api.profile import ClusterEngineRuntimeProfile
from rbg_flows.api.rbg import RoleBasedGroup
from rbg_flows.api.rbgset import RoleBasedGroupSet
from rbg_flows.api.scaling_adapter import RoleBasedGroupScalingAdapter

_HEADER = (
    "# Generated from the models in rbg_flows/api: do not edit.\n"
    "# Regenerate with `python -m rbg_flows.api.crd deploy/crds`.\n"
)

KUSTOMIZATION_FILE = "Kustomization"

_AGE_COLUMN: dict[str, Any] = {"name": "AGE", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

# Serve v1alpha2 (storage) beside v1alpha1 for the three kinds v1alpha1 had, converting through the
# webhook. Needs the webhook running wherever these CRDs are installed.
SERVE_V1ALPHA2: Final = True

# Where the API server sends ConversionReviews (deploy/ runs the webhook behind this Service).
WEBHOOK_CLIENT_CONFIG: Final[Mapping[str, Any]] = {
    "service": {"namespace": "rbg-flows-system", "name": "rbg-flows-webhook", "path": "/convert", "port": 443}
}


@dataclass(frozen=True)
class CrdKind:
    """What a CRD needs beyond the schema of its models."""

    model: type[BaseModel]
    kind: str
    plural: str
    short_names: tuple[str, ...]
    printer_columns: tuple[Mapping[str, Any], ...]
    scale: Mapping[str, str] | None = None
    model_v1alpha2: type[BaseModel] | None = None
    """The v1alpha2 model; None: v1alpha1 only."""
    webhook_conversion: bool = False
    """The versions differ, so the API server converts through the webhook."""
    scope: Literal["Namespaced", "Cluster"] = "Namespaced"
    always_both_versions: bool = False
    """Served in both versions even before SERVE_V1ALPHA2 (a kind new with v1alpha2)."""

    @property
    def serves_v1alpha2(self) -> bool:
        return self.model_v1alpha2 is not None and (SERVE_V1ALPHA2 or self.always_both_versions)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def file_name(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


KINDS: tuple[CrdKind, ...] = (
    CrdKind(
        model=RoleBasedGroup,
        kind="RoleBasedGroup",
        plural="rolebasedgroups",
        short_names=("rbg",),
        printer_columns=(
            {"name": "READY", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "REVISION", "type": "string", "jsonPath": ".status.currentRevision"},
            {"name": "PHASE", "type": "string", "jsonPath": ".status.phase"},
            _AGE_COLUMN,
        ),
        model_v1alpha2=v1alpha2.RoleBasedGroup,
        webhook_conversion=True,
    ),
    CrdKind(
        model=RoleBasedGroupSet,
        kind="RoleBasedGroupSet",
        plural="rolebasedgroupsets",
        short_names=("rbgs",),
        printer_columns=(
            {"name": "DESIRED", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "READY", "type": "integer", "jsonPath": ".status.readyReplicas"},
            _AGE_COLUMN,
        ),
        scale={
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
        model_v1alpha2=v1alpha2.RoleBasedGroupSet,
        webhook_conversion=True,
    ),
    CrdKind(
        model=RoleBasedGroupScalingAdapter,
        kind="RoleBasedGroupScalingAdapter",
        plural="rolebasedgroupscalingadapters",
        short_names=("rbgsa",),
        printer_columns=(
            {"name": "PHASE", "type": "string", "jsonPath": ".status.phase"},
            {"name": "REPLICAS", "type": "integer", "jsonPath": ".status.replicas"},
            {"name": "READY", "type": "integer", "jsonPath": ".status.readyReplicas"},
            _AGE_COLUMN,
        ),
        scale={
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
        model_v1alpha2=v1alpha2.RoleBasedGroupScalingAdapter,
    ),
    CrdKind(
        model=ClusterEngineRuntimeProfile,
        kind="ClusterEngineRuntimeProfile",
        plural="clusterengineruntimeprofiles",
        short_names=(),  # the reference has none
        printer_columns=(_AGE_COLUMN,),
        model_v1alpha2=ClusterEngineRuntimeProfile,
        scope="Cluster",
        always_both_versions=True,
    ),
)

# Keywords carried over unchanged, in the order they are written out.
_KEY_ORDER = (
    "description",
    "type",
    "format",
    "anyOf",
    "x-kubernetes-int-or-string",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "items",
    "properties",
    "required",
    "additionalProperties",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
)
_COPIED = frozenset(_KEY_ORDER) - {"anyOf", "items", "properties", "required", "additionalProperties", "type"}
_IGNORED = frozenset({"title"})
_INT_OR_STRING_ANY_OF = ({"type": "integer"}, {"type": "string"})


def _flatten(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    """Inline `$ref`s and collapse `X | None`; the referring node's keywords win (its description
    is the field's, the target's the model's)."""
    out = dict(node)
    while True:
        if "$ref" in out:
            ref = out.pop("$ref")
            out = {**defs[ref.rsplit("/", 1)[-1]], **out}
        elif "anyOf" in out and not out.get("x-kubernetes-int-or-string"):
            branches = [b for b in out.pop("anyOf") if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError(f"{path}: unions other than `X | None` have no structural form")
            out = {**branches[0], **out}
        else:
            return out


def _convert(node: Mapping[str, Any], defs: Mapping[str, Any], path: str) -> dict[str, Any]:
    node = _flatten(node, defs, path)
    out: dict[str, Any] = {}
    if node.get("x-kubernetes-int-or-string"):
        # The single anyOf shape a structural schema accepts; the node itself must not have a type.
        out["anyOf"] = [dict(branch) for branch in _INT_OR_STRING_ANY_OF]
    elif "type" in node:
        out["type"] = node["type"]
    else:
        raise ValueError(f"{path}: every node of a structural schema needs a type")
    for key, value in node.items():
        if key in _IGNORED or key in ("type", "anyOf"):
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs, f"{path}.{name}") for name, sub in value.items()}
        elif key == "required":
            out[key] = list(value)
        elif key == "items":
            items = _convert(value, defs, f"{path}[]")
            if "description" in node:  # kubectl explain would print the model's text under the field's
                items.pop("description", None)
            out[key] = items
        elif key == "additionalProperties":
            if value is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:  # False: a structural schema refuses unknown fields already
                out[key] = _convert(value, defs, f"{path}{{}}")
        elif key == "default":
            if value is not None:
                out[key] = value
        elif key == "const":  # a one-value Literal
            out["enum"] = [value]
        elif key == "description":
            out[key] = " ".join(str(value).split())
        elif key in _COPIED:
            out[key] = value
        else:
            raise ValueError(f"{path}: JSON schema keyword {key!r} has no CRD mapping")
    return {key: out[key] for key in _KEY_ORDER if key in out}


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The openAPIV3Schema of a top-level kind: spec and status from the model, the rest standard;
    spec required unless the model has a default for it."""
    schema = model.model_json_schema(mode="validation", by_alias=True)
    defs = schema.get("$defs", {})
    properties = schema["properties"]
    expected = {"apiVersion", "kind", "metadata", "spec", "status"}
    if set(properties) != expected:
        raise ValueError(f"{model.__name__}: top-level fields {sorted(properties)} != {sorted(expected)}")
    return {
        "description": " ".join(str(schema.get("description", model.__name__)).split()),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "Versioned schema of this representation of an object.",
                "type": "string",
            },
            "kind": {"description": "REST resource this object represents.", "type": "string"},
            # The API server owns metadata validation; CRDs may not constrain it further.
            "metadata": {"type": "object"},
            "spec": _convert(properties["spec"], defs, "spec"),
            "status": _convert(properties["status"], defs, "status"),
        },
        **({"required": ["spec"]} if "spec" in schema.get("required", []) else {}),
    }


def _version(kind: CrdKind, name: str, model: type[BaseModel], storage: bool) -> dict[str, Any]:
    subresources: dict[str, Any] = {"status": {}}
    if kind.scale is not None:
        subresources["scale"] = dict(kind.scale)
    version: dict[str, Any] = {"name": name, "served": True, "storage": storage}
    if not storage:
        version["deprecated"] = True
        version["deprecationWarning"] = (
            f"{GROUP}/{name} {kind.kind} is deprecated; use {GROUP}/{VERSION_V1ALPHA2} {kind.kind}"
        )
    version["schema"] = {"openAPIV3Schema": structural_schema(model)}
    version["subresources"] = subresources
    version["additionalPrinterColumns"] = [dict(column) for column in kind.printer_columns]
    return version


def crd_manifest(kind: CrdKind, conversion_client_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The CRD of `kind`; `conversion_client_config` replaces the webhook's clientConfig (a URL and
    caBundle where the webhook does not run behind the in-cluster Service, as in the sim)."""
    names: dict[str, Any] = {
        "kind": kind.kind,
        "listKind": f"{kind.kind}List",
        "plural": kind.plural,
        "singular": kind.kind.lower(),
    }
    if kind.short_names:
        names["shortNames"] = list(kind.short_names)
    spec: dict[str, Any] = {"group": GROUP, "names": names, "scope": kind.scope}
    if kind.serves_v1alpha2 and kind.model_v1alpha2 is not None:
        spec["versions"] = [
            _version(kind, VERSION, kind.model, storage=False),
            _version(kind, VERSION_V1ALPHA2, kind.model_v1alpha2, storage=True),
        ]
        if kind.webhook_conversion:
            spec["conversion"] = {
                "strategy": "Webhook",
                "webhook": {
                    "conversionReviewVersions": ["v1"],
                    "clientConfig": copy.deepcopy(dict(conversion_client_config or WEBHOOK_CLIENT_CONFIG)),
                },
            }
        else:
            spec["conversion"] = {"strategy": "None"}
    else:
        spec["versions"] = [_version(kind, VERSION, kind.model, storage=True)]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": kind.crd_name},
        "spec": spec,
    }


class _Dumper(yaml.SafeDumper):
    """Never writes anchors/aliases: generated files are read by people and by kubectl."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump(document: Mapping[str, Any]) -> str:
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, width=100, default_flow_style=False)


def render_files() -> dict[str, str]:
    """File name -> content of every file under deploy/crds/, the kustomization included."""
    files = {kind.file_name: _HEADER + _dump(crd_manifest(kind)) for kind in KINDS}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [kind.file_name for kind in KINDS],
    }
    # Named `Kustomization` (a name kustomize recognises) rather than kustomization.yaml so that
    # `kubectl apply -f deploy/crds/` does not try to send it to the API server; `-k` works too.
    files[KUSTOMIZATION_FILE] = _HEADER + _dump(kustomization)
    return files


def stale_files(directory: Path) -> list[str]:
    """Files under `directory` that are missing or differ from what the models generate."""
    return [
        name
        for name, content in render_files().items()
        if not (directory / name).is_file() or (directory / name).read_text() != content
    ]


def write_crds(directory: Path | str) -> list[Path]:
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_files().items():
        path = target / name
        path.write_text(content)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rbg_flows.api.crd", description="Write the CRDs generated from the models."
    )
    parser.add_argument("directory", nargs="?", default="deploy/crds", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale, write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.directory)
        for name in stale:
            print(f"stale: {args.directory / name}", file=sys.stderr)
        return 1 if stale else 0
    for path in write_crds(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
