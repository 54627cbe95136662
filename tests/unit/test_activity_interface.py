"""The workflows schedule activities through stubs: each stub must have an implementation registered by
the worker, under the same name and with the same argument and result types."""

from __future__ import annotations

import inspect
import typing
from typing import Any, cast

from temporalio import activity

from rbg_flows.activities.interface import STUBS
from rbg_flows.messages import Timeouts
from rbg_flows.worker import activities


def _name(fn: Any) -> str:
    defn = activity._Definition.from_callable(fn)
    assert defn is not None and defn.name is not None
    return defn.name


def _signature(fn: Any) -> tuple[list[Any], Any]:
    hints = typing.get_type_hints(fn)
    params = [hints[p] for p in inspect.signature(fn).parameters if p != "self"]
    return params, hints.get("return")


def test_every_stub_has_an_implementation_with_its_signature() -> None:
    impls = {_name(fn): fn for fn in activities(cast(Any, None), cast(Any, None), Timeouts())}
    stubs = {_name(fn): fn for fn in STUBS}
    assert sorted(impls) == sorted(stubs)
    for name, stub in stubs.items():
        assert _signature(impls[name]) == _signature(stub), name
