"""Malformed manifests with the refusal each must end in (see README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Case:
    file: str
    expect: str  # validation | admission | operation
    path: str
    message: str
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


def load(path: Path) -> Case:
    text = path.read_text()
    header = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].strip().partition(": ")
        if sep and key in ("expect", "path", "message"):
            header[key] = value
    return Case(path.name, header["expect"], header.get("path", ""), header["message"], yaml.safe_load(text))


def cases() -> list[Case]:
    return [load(p) for p in sorted(HERE.glob("*.yaml"))]
