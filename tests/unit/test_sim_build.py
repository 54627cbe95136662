"""The pure parts of the sim's binary build: go.mod versions, cache keys and version ldflags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rbg_flows.sim.build import HACK, BuildError, _k8s_ldflags, cache_key, required_version

BLOCK = """\
module example.com/pin

go 1.25.0

require (
\tcel.dev/expr v0.24.0 // indirect
\tgo.etcd.io/etcd/server/v3 v3.6.5 // indirect
\tk8s.io/kubernetes v1.35.4 // indirect
\tk8s.io/kubernetes-extra v9.9.9
\tgopkg.in/yaml.v3 v3.0.1
)

tool (
\tgo.etcd.io/etcd/server/v3
\tk8s.io/kubernetes/cmd/kube-apiserver
)

replace (
\tk8s.io/api => k8s.io/api v0.35.4
)
"""


def test_required_version_single_line() -> None:
    gomod = "module m\n\ngo 1.25\n\nrequire sigs.k8s.io/lws v0.8.0\nrequire k8s.io/api v0.34.1 // indirect\n"
    assert required_version(gomod, "sigs.k8s.io/lws") == "v0.8.0"
    assert required_version(gomod, "k8s.io/api") == "v0.34.1"


def test_required_version_block() -> None:
    assert required_version(BLOCK, "k8s.io/kubernetes") == "v1.35.4"
    assert required_version(BLOCK, "go.etcd.io/etcd/server/v3") == "v3.6.5"
    assert required_version(BLOCK, "k8s.io/kubernetes-extra") == "v9.9.9"
    assert required_version(BLOCK, "gopkg.in/yaml.v3") == "v3.0.1"


@pytest.mark.parametrize(
    "module",
    [
        "sigs.k8s.io/lws",  # absent
        "k8s.io/kube",  # a prefix of a required module
        "gopkg.in/yamlXv3",  # a dot in the name is literal
        "k8s.io/api",  # only a replacement target
        "k8s.io/kubernetes/cmd/kube-apiserver",  # only a tool, no version
    ],
)
def test_required_version_missing(module: str) -> None:
    with pytest.raises(BuildError, match=re.escape(module)):
        required_version(BLOCK, module)


def test_required_version_of_the_pinned_modules() -> None:
    k8s = (HACK / "k8s" / "go.mod").read_text()
    assert re.fullmatch(r"v1\.\d+\.\d+", required_version(k8s, "k8s.io/kubernetes"))
    assert re.fullmatch(r"v3\.\d+\.\d+", required_version(k8s, "go.etcd.io/etcd/server/v3"))
    assert required_version((HACK / "lws" / "go.mod").read_text(), "sigs.k8s.io/lws").startswith("v0.")


def _module(root: Path, mod: str = "module m\n", sums: str = "a v1 h1:x\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "go.mod").write_text(mod)
    (root / "go.sum").write_text(sums)
    return root


def test_cache_key(tmp_path: Path) -> None:
    mod = _module(tmp_path / "m")
    key = cache_key(mod, "k8s-v1.35.4-etcd-v3.6.5")
    assert re.fullmatch(r"k8s-v1\.35\.4-etcd-v3\.6\.5-[0-9a-f]{12}", key)
    assert cache_key(mod, "k8s-v1.35.4-etcd-v3.6.5") == key  # stable
    assert cache_key(_module(tmp_path / "copy"), "k8s-v1.35.4-etcd-v3.6.5") == key  # content, not path
    (mod / "go.sum").write_text("a v1 h1:y\n")
    changed = cache_key(mod, "k8s-v1.35.4-etcd-v3.6.5")
    assert changed != key and changed.startswith("k8s-v1.35.4-etcd-v3.6.5-")
    (mod / "go.mod").write_text("module m\nrequire b v2\n")
    assert cache_key(mod, "k8s-v1.35.4-etcd-v3.6.5") not in (key, changed)


def test_k8s_ldflags() -> None:
    flags = _k8s_ldflags("v1.35.4")
    assert flags.startswith("-s -w ")
    values = dict(re.findall(r"-X k8s\.io/component-base/version\.(\w+)=(\S+)", flags))
    assert values["gitMajor"] == "1"
    assert values["gitMinor"] == "35"
    assert values["gitVersion"] == "v1.35.4"
    assert values["gitTreeState"] == "clean"
    assert set(values) >= {"gitCommit", "buildDate"}
    assert dict(re.findall(r"version\.(\w+)=(\S+)", _k8s_ldflags("v1.9.0-rc.1")))["gitMinor"] == "9"
