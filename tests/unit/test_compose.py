"""docker-compose.yml is never run here (no container engine), so it is checked instead: against the
Compose specification's JSON schema, the one the reference implementation (compose-spec/compose-go, whose
`schema/compose-spec.json` Docker Compose validates with) ships in its Go module, fetched by `go mod
download` at a pinned version and cached in the Go module cache; and for what this project needs of it
(the search attributes, the start order, the processes' flags)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rbg_flows.cli.main import parser
from rbg_flows.messages import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_GO = "github.com/compose-spec/compose-go/v2@v2.16.2"


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain: the Compose schema comes from the compose-go Go module")
    # Outside any go.mod, so the download is of the module alone.
    proc = subprocess.run(
        [go, "mod", "download", "-json", COMPOSE_GO],
        cwd=tmp_path_factory.mktemp("compose-go"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    info = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or "Dir" not in info:
        pytest.skip(f"could not download {COMPOSE_GO}: {info.get('Error') or proc.stderr.strip()}")
    loaded: dict[str, Any] = json.loads((Path(info["Dir"]) / "schema" / "compose-spec.json").read_text())
    return loaded


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in cls(schema).iter_errors(doc)]


def test_compose_file_matches_the_compose_spec(schema: dict[str, Any], compose: dict[str, Any]) -> None:
    assert _errors(schema, compose) == []


def test_the_schema_rejects_a_broken_file(schema: dict[str, Any], compose: dict[str, Any]) -> None:
    # Guards the test above against a schema that accepts anything.
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["depends_on"]["temporal-setup"]["condition"] = "service_ready"
    broken["services"]["watcher"]["network"] = "host"
    errors = _errors(schema, broken)
    assert any("service_ready" in e for e in errors), errors
    assert any("network" in e for e in errors), errors


def test_services_start_in_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {
        "postgresql",
        "temporal-schema",
        "temporal",
        "temporal-setup",
        "temporal-ui",
        "worker",
        "watcher",
    } <= set(services)
    one_shots = {"temporal-schema", "temporal-setup"}
    for name, svc in services.items():
        for dep, cond in svc.get("depends_on", {}).items():
            want = "service_completed_successfully" if dep in one_shots else "service_healthy"
            assert cond["condition"] == want, f"{name} waits for {dep}"
        if name not in one_shots and name != "temporal-ui":
            assert "healthcheck" in svc, f"{name} has a healthcheck the others can wait on"
    assert "postgresql" in services["temporal-schema"]["depends_on"]
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    for name in ("worker", "watcher"):
        assert "temporal-setup" in services[name]["depends_on"]


def test_setup_registers_every_search_attribute(compose: dict[str, Any]) -> None:
    script = compose["services"]["temporal-setup"]["command"][0]
    assert "temporal operator search-attribute create" in script
    registered = dict(re.findall(r"\b(Rbg\w+)=(Keyword|Int)\b", script))
    expected = {k.name: k.indexed_value_type.name.rsplit("_", 1)[-1].title() for k in SEARCH_ATTRIBUTES}
    assert registered == expected


def test_processes_run_from_the_image_against_the_host_kubeconfig(compose: dict[str, Any]) -> None:
    for name in ("worker", "watcher"):
        svc = compose["services"][name]
        assert svc["build"]["dockerfile"] == "Dockerfile"
        assert svc["network_mode"] == "host", "a local cluster at 127.0.0.1 must be reachable"
        kubeconfig = svc["environment"]["KUBECONFIG"]
        assert any(v.endswith(f":{kubeconfig}:ro") for v in svc["volumes"]), "kubeconfig mounted read-only"
        # The flags are the CLI's own: a renamed flag fails here, not in a user's `docker compose up`.
        command = svc["command"]
        parser(command[0]).parse_args(command)
    assert "--no-register" in compose["services"]["worker"]["command"]
