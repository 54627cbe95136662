"""`FaultProxyControl`: the client of the proxy's control listener (JSON over plain HTTP)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp

from rbg_flows.sim.faultproxy.rules import _RULES_ADAPTER, FaultRule


class FaultProxyControl:
    """Client of a `FaultProxy` control listener (`proxy.control_url`), for another process."""

    def __init__(self, control_url: str, timeout: float = 30.0) -> None:
        self.control_url = control_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def _call(self, method: str, path: str, payload: Any = None) -> Any:
        # A session per call: calls are rare, and nothing is left to close if a test forgets to.
        async with (
            aiohttp.ClientSession(timeout=self._timeout) as session,
            session.request(method, self.control_url + path, json=payload) as resp,
        ):
            if resp.status >= 400:
                raise RuntimeError(f"{method} {path} -> {resp.status}: {await resp.text()}")
            return await resp.json()

    async def rules(self) -> list[FaultRule]:
        return _RULES_ADAPTER.validate_python(await self._call("GET", "/rules"))

    async def set_rules(self, rules: Sequence[FaultRule]) -> None:
        await self._call("POST", "/rules", [r.model_dump(mode="json") for r in rules])

    async def clear(self) -> None:
        await self._call("DELETE", "/rules")

    async def cut_watches(self) -> int:
        return int((await self._call("POST", "/cut-watches"))["cut"])

    async def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/stats")
        return result
