"""Int-or-percent arithmetic as Kubernetes does it (intstr.GetScaledValueFromIntOrPercent)."""

from __future__ import annotations

import re

_PERCENT = re.compile(r"^([0-9]+)%$")


def parse_percent(value: str) -> int:
    """ "25%" -> 25; ValueError for anything that is not a whole, non-negative percentage."""
    match = _PERCENT.match(value)
    if match is None:
        raise ValueError(f"invalid percentage {value!r}: want a whole number followed by '%'")
    return int(match.group(1))


def resolve_int_or_percent(value: int | str, total: int, round_up: bool) -> int:
    """An absolute count: integers as they are, percentages scaled against `total`.

    maxSurge and partition round up, maxUnavailable rounds down (as Deployments and StatefulSets do).
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not an int-or-percent")
    if isinstance(value, int):
        return value
    scaled = parse_percent(value) * total
    # Integer arithmetic: float rounding would turn 29% of 100 into 28.999...
    return -(-scaled // 100) if round_up else scaled // 100
