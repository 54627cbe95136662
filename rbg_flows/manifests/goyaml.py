"""YAML text as Go's sigs.k8s.io/yaml.Marshal writes it (JSON -> yaml.v2), for files whose bytes
users may compare with the reference's.

yaml.v2 sorts map keys in its own natural order, writes block style with sequences not indented,
and double-quotes exactly the strings its YAML 1.1 resolver would read as something else; PyYAML
does the rest the same way once its resolver is swapped for yaml.v2's.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from typing import Any, Final

import yaml

_STR: Final = "tag:yaml.org,2002:str"
_BOOL: Final = "tag:yaml.org,2002:bool"
_INT: Final = "tag:yaml.org,2002:int"
_FLOAT: Final = "tag:yaml.org,2002:float"
_NULL: Final = "tag:yaml.org,2002:null"
_TIMESTAMP: Final = "tag:yaml.org,2002:timestamp"
_MERGE: Final = "tag:yaml.org,2002:merge"

_SPECIAL: Final = {
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"], _BOOL),
    **dict.fromkeys(["n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"], _BOOL),
    **dict.fromkeys(["", "~", "null", "Null", "NULL"], _NULL),
    **dict.fromkeys([".nan", ".NaN", ".NAN"], _FLOAT),
    **dict.fromkeys([f"{sign}.{inf}" for sign in ("", "+", "-") for inf in ("inf", "Inf", "INF")], _FLOAT),
    "<<": _MERGE,
}
_GO_INT: Final = re.compile(r"^[+-]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_YAML_FLOAT: Final = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DATE: Final = re.compile(r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})$")
_DATETIME: Final = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}[Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}")
_BASE60_FLOAT: Final = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


def render_go_yaml(data: Any) -> str:
    """YAML text of JSON-shaped data, as sigs.k8s.io/yaml.Marshal renders it."""
    return yaml.dump(
        _sorted_maps(data),
        Dumper=_GoYamlDumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=1 << 16,
    )


def go_resolve(value: str) -> str:
    """The tag yaml.v2 gives `value` written as a plain scalar (its resolve())."""
    if value in _SPECIAL:
        return _SPECIAL[value]
    first = value[0]
    if first == ".":
        return _FLOAT if _YAML_FLOAT.match(value) else _STR
    if not (first.isascii() and (first.isdigit() or first in "+-")):
        return _STR
    if _is_timestamp(value):
        return _TIMESTAMP
    plain = value.replace("_", "")
    if _GO_INT.match(plain) and _fits_64_bits(plain):
        return _INT
    if _YAML_FLOAT.match(plain) and not math.isinf(float(plain)):
        return _FLOAT
    return _STR


def _is_timestamp(value: str) -> bool:
    date = _DATE.match(value)
    if date is not None:
        try:
            datetime.date(*(int(part) for part in date.groups()))
        except ValueError:
            return False
        return True
    return _DATETIME.match(value) is not None


def _fits_64_bits(plain: str) -> bool:
    negative = plain.startswith("-")
    digits = plain.lstrip("+-")
    base = {"x": 16, "o": 8, "b": 2}.get(digits[1:2].lower(), 8) if digits.startswith("0") else 10
    body = digits[2:] if base != 10 and digits[1:2].isalpha() else digits
    number = int(body or "0", base)
    if negative:
        return number <= 1 << 63
    if plain.startswith("+"):
        return number < 1 << 63
    return number < 1 << 64


def _needs_quotes(value: str) -> bool:
    return go_resolve(value) != _STR or _BASE60_FLOAT.match(value) is not None


class _GoYamlDumper(yaml.SafeDumper):
    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # Plain scalars are read back as yaml.v2 would: a string PyYAML alone would take for a
        # number or a boolean ("1e3" yes, "=" no) gets quoted exactly when Go quotes it.
        if kind is yaml.ScalarNode:
            return go_resolve(value) if implicit[0] else _STR
        return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else '"' if _needs_quotes(data) else None
    return dumper.represent_scalar(_STR, data, style=style)


_GoYamlDumper.add_representer(str, _represent_str)


def _sorted_maps(value: Any) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=functools.cmp_to_key(_key_cmp))
        return {key: _sorted_maps(value[key]) for key in keys}
    if isinstance(value, list):
        return [_sorted_maps(item) for item in value]
    return value


def _key_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    return -1 if _key_less(a, b) else 1


def _key_less(a: str, b: str) -> bool:
    """yaml.v2's order of string keys: letters after other characters, runs of digits compared as
    numbers ("role2" < "role10").

    Go's comparison is not a strict order for keys that differ only in leading zeros ("01", "1e3",
    "010"): there even Go's output varies from run to run, so no byte-exact answer exists.
    """
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            continue
        a_letter, b_letter = a[i].isalpha(), b[i].isalpha()
        if a_letter and b_letter:
            return a[i] < b[i]
        if a_letter or b_letter:
            return b_letter
        a_num = b_num = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and a[j].isdigit():
                if a[j] != "0":
                    a_num = b_num = 1
                    break
                j -= 1
        a_end = i
        while a_end < len(a) and a[a_end].isdigit():
            a_num = a_num * 10 + int(a[a_end])
            a_end += 1
        b_end = i
        while b_end < len(b) and b[b_end].isdigit():
            b_num = b_num * 10 + int(b[b_end])
            b_end += 1
        if a_num != b_num:
            return a_num < b_num
        if a_end != b_end:
            return a_end < b_end
        return a[i] < b[i]
    return len(a) < len(b)
