"""Strategic merge patch of JSON-shaped dicts, as Kubernetes applies it (k8s.io/apimachinery
strategicpatch with the options of StrategicMergePatch: unmatched nulls dropped, parallel deletion
lists honoured).

RBG users write `templatePatch`, `patchLeaderTemplate` and `patchWorkerTemplate` against the Go
implementation, so this follows it exactly, quirks included: the order of merged lists (patch items
go where kubectl puts them: new ones before the remaining original ones), `$patch: delete` on a map
leaving `{}`, directives copied verbatim under `$patch: replace`. No maintained Python library does
strategic merge, and the unit tests check this one against kubectl.

Supported: maps merged recursively, `null` deleting a key, lists merged by their patch merge key
(`patchmeta.py`), other lists replaced, `$patch: replace|delete` in maps and list items,
`$retainKeys`, `$deleteFromPrimitiveList/<list>` and `$setElementOrder/<list>`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from rbg_flows.manifests.patchmeta import POD_TEMPLATE_SPEC, ListMerge, PatchMeta

DIRECTIVE: Final = "$patch"
RETAIN_KEYS: Final = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST: Final = "$deleteFromPrimitiveList/"
SET_ELEMENT_ORDER: Final = "$setElementOrder/"


class PatchError(ValueError):
    """The patch is not a valid strategic merge patch (Kubernetes refuses it too)."""


def strategic_merge_patch(
    original: Mapping[str, Any] | None,
    patch: Mapping[str, Any] | None,
    meta: PatchMeta = POD_TEMPLATE_SPEC,
) -> dict[str, Any]:
    """`original` with `patch` applied; neither argument is modified."""
    base: dict[str, Any] = copy.deepcopy(dict(original or {}))
    if not patch:
        return base
    return _merge_map(base, copy.deepcopy(dict(patch)), meta)


# --- maps --------------------------------------------------------------------------------------


def _merge_map(original: dict[str, Any], patch: dict[str, Any], meta: PatchMeta) -> dict[str, Any]:
    # Both arguments are private copies: mutated freely.
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return patch
        if directive == "delete":
            # Kubernetes leaves an empty map, not a missing key.
            return {}
        raise PatchError(f"unknown patch type {directive!r} in {patch!r}")

    _apply_retain_keys(original, patch)
    _apply_set_element_order(original, patch, meta)

    for key, patch_value in patch.items():
        deletion_list = key.startswith(DELETE_FROM_PRIMITIVE_LIST)
        if deletion_list:
            key = key[len(DELETE_FROM_PRIMITIVE_LIST) :]
        if patch_value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(patch_value):
            if not deletion_list:
                _set_stripped(original, key, _discard_nulls(patch_value))
            continue
        current = original[key]
        if isinstance(current, dict):
            original[key] = _merge_map(current, patch_value, meta.object(key))
        elif isinstance(current, list):
            merge = meta.list_merge(key)
            if merge is None and not deletion_list:
                # Atomic list: replaced as given, nested directives and all (as Kubernetes does).
                original[key] = patch_value
            else:
                original[key] = _merge_list(current, patch_value, merge, deletion_list)
        else:
            _set_stripped(original, key, patch_value)
    return original


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _set_stripped(target: dict[str, Any], key: str, value: Any) -> None:
    stripped, keep = _remove_directives(value)
    if keep:
        target[key] = stripped
    else:
        target.pop(key, None)


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise PatchError(f"{RETAIN_KEYS} must be a list")
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in retain:
            raise PatchError(f"{key!r} is patched but missing from {RETAIN_KEYS} {retain!r}")
    for key in list(original):
        if key not in retain:
            del original[key]


def _apply_set_element_order(original: dict[str, Any], patch: dict[str, Any], meta: PatchMeta) -> None:
    for directive_key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(directive_key)
        if not isinstance(order, list):
            raise PatchError(f"{directive_key} must be a list")
        key = directive_key[len(SET_ELEMENT_ORDER) :]
        merge = meta.list_merge(key)
        in_original, in_patch = key in original, key in patch
        if not in_original and not in_patch:
            continue
        original_list = list(original[key]) if in_original else []
        if in_original and in_patch:
            merged = patch[key] if merge is None else _merge_list(original[key], patch[key], merge, False)
        elif in_patch:
            merged, _ = _remove_directives(patch[key])
        else:
            merged = original[key]
        merge_key = merge.key if merge is not None else None
        items = _element_kind(original_list, patch.get(key) or [])
        in_order, server_only = _partition(merged, order, merge_key if items == "map" else None)
        original[key] = _normalize_order(in_order, server_only, order, original_list, merge_key, items)
        patch.pop(key, None)


# --- lists -------------------------------------------------------------------------------------


def _merge_list(
    original: list[Any], patch: list[Any], merge: ListMerge | None, deletion_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    items = _element_kind(original, patch)
    merge_key = merge.key if merge is not None else None
    item_meta = merge.items if merge is not None else PatchMeta()

    if items != "map":
        if deletion_list:
            return [value for value in original if not any(_same(value, gone) for gone in patch)]
        merged = _deduplicate_scalars(original + patch)
        key_for_order = None
    else:
        if not merge_key:
            raise PatchError("cannot merge a list of objects without a merge key")
        original, patch = _special_elements(original, patch, merge_key)
        merged = _merge_items(list(original), patch, merge_key, item_meta)
        key_for_order = merge_key

    in_patch, server_only = _partition(merged, patch, key_for_order)
    return _normalize_order(in_patch, server_only, patch, original, key_for_order, items)


def _element_kind(*lists: list[Any]) -> str:
    kinds = {_kind(value) for values in lists for value in values}
    if "list" in kinds:
        raise PatchError("lists of lists cannot be merged")
    if len(kinds) > 1:
        raise PatchError("list element types are not identical")
    if not kinds:
        raise PatchError("no elements in any of the given lists")
    return kinds.pop()


def _special_elements(original: list[Any], patch: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    """Apply `$patch: delete|replace` items; the patch without them."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise PatchError(f"delete directive {item!r} lacks the merge key {merge_key!r}")
            original = [o for o in original if not _same(o.get(merge_key), item[merge_key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type {directive!r} in {item!r}")
    if replace:
        return plain, []
    return original, plain


def _merge_items(original: list[Any], patch: list[Any], merge_key: str, item_meta: PatchMeta) -> list[Any]:
    for item in patch:
        if merge_key not in item:
            raise PatchError(f"{item!r} lacks the merge key {merge_key!r}")
        index = _find(original, item[merge_key], merge_key)
        if index is None:
            original.append(item)
        else:
            original[index] = _merge_map(original[index], item, item_meta)
    return original


def _find(values: list[Any], key_value: Any, merge_key: str) -> int | None:
    for index, value in enumerate(values):
        if not isinstance(value, dict):
            raise PatchError(f"list item {index} is not an object")
        if merge_key in value and _same(value[merge_key], key_value):
            return index
    return None


def _partition(merged: list[Any], by: list[Any], merge_key: str | None) -> tuple[list[Any], list[Any]]:
    """(items of `merged` also present in `by`, the others), each in `merged` order."""
    present: list[Any] = []
    others: list[Any] = []
    for value in merged:
        if merge_key is None:
            found = any(_same(value, other) for other in by)
        else:
            if merge_key not in value:
                raise PatchError(f"{value!r} lacks the merge key {merge_key!r}")
            found = _find(by, value[merge_key], merge_key) is not None
        (present if found else others).append(value)
    return present, others


def _normalize_order(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str | None,
    items: str,
) -> list[Any]:
    in_patch = _sort_by(in_patch, patch_order, merge_key, items)
    server_only = _sort_by(server_only, server_order, merge_key, items)
    return _merge_sorted(server_only, in_patch, server_order, merge_key)


def _sort_by(values: list[Any], order: list[Any], merge_key: str | None, items: str) -> list[Any]:
    deleted: list[Any] = []
    if items == "map":
        deleted = [v for v in values if v.get(DIRECTIVE) == "delete"]
        values = [v for v in values if v.get(DIRECTIVE) != "delete"]

    def position(value: Any) -> int:
        found = _index(order, value, merge_key)
        return len(order) if found < 0 else found

    return sorted(values, key=position) + deleted


def _merge_sorted(
    left: list[Any], right: list[Any], server_order: list[Any], merge_key: str | None
) -> list[Any]:
    """Interleave server-only items (`left`) with patch items (`right`), keeping each list's order.

    A left item goes first only when both are in the original list and it came earlier there, so
    items new to the list end up before the original items that follow them.
    """
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key)
            ri = _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _index(values: list[Any], value: Any, merge_key: str | None) -> int:
    probe = value.get(merge_key) if merge_key is not None and isinstance(value, dict) else value
    for index, candidate in enumerate(values):
        other = (
            candidate.get(merge_key) if merge_key is not None and isinstance(candidate, dict) else candidate
        )
        if _same(other, probe):
            return index
    return -1


def _deduplicate_scalars(values: list[Any]) -> list[Any]:
    # Kubernetes' in-place dedup: a duplicate is overwritten by the last element, which reorders.
    out = list(values)
    last = len(out) - 1
    i = 0
    while i < last:
        j = i + 1
        while j <= last:
            if _same(out[i], out[j]):
                out[j] = out[last]
                out = out[:last]
                last -= 1
                j -= 1
            j += 1
        i += 1
    return out


def _same(a: Any, b: Any) -> bool:
    """Go's interface equality on decoded JSON: values of different JSON types never match (Python's
    `1 == True` and `1 == 1.0` aside, numbers are all float64 in Go)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


# --- values copied from the patch --------------------------------------------------------------


def _remove_directives(value: Any) -> tuple[Any, bool]:
    """The value without any map carrying `$patch`; (None, False) when the value itself is one."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return None, False
        out: dict[str, Any] = {}
        for key, item in value.items():
            stripped, keep = _remove_directives(item)
            if keep:
                out[key] = stripped
        return out, True
    if isinstance(value, list):
        kept = [stripped for stripped, keep in map(_remove_directives, value) if keep]
        return kept, True
    return value, True


def _discard_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _discard_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_discard_nulls(v) for v in value]
    return value
