"""A lean async Kubernetes client speaking JSON dicts over one aiohttp session.

kubernetes_asyncio loads the kubeconfig (certificates, tokens, exec plugins); requests go out raw so
hot paths (the node simulator's watches and status patches, the orchestrator's server-side applies)
pay no model (de)serialisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import load_kube_config

JSON = dict[str, Any]

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


class ApiError(Exception):
    """A Kubernetes API error with the server's own Status reason and message."""

    def __init__(self, status: int, reason: str, message: str, retry_after: float | None = None):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


class KubeClient:
    def __init__(self, cfg: Configuration, *, max_connections: int = 64, qps: float | None = None):
        self.cfg = cfg
        # The Python client has no client-side rate limit; a token bucket protects the API server from a
        # burst of operations (client-go's default is 5 QPS, far too low for a controller of 1,000 groups).
        self._limiter = AsyncLimiter(qps, 1.0) if qps else None
        self.base = str(cfg.host).rstrip("/")
        ctx: ssl.SSLContext | bool
        if self.base.startswith("https"):
            ctx = (
                ssl.create_default_context(cafile=cfg.ssl_ca_cert)
                if cfg.ssl_ca_cert
                else ssl.create_default_context()
            )
            if cfg.cert_file and cfg.key_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            if not cfg.verify_ssl:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = False
        self._connector = aiohttp.TCPConnector(ssl=ctx, limit=max_connections)
        self._session = aiohttp.ClientSession(
            connector=self._connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            json_serialize=json.dumps,
        )

    @classmethod
    async def from_kubeconfig(cls, path: str | Path | None = None, **kw: Any) -> KubeClient:
        cfg = Configuration()
        await load_kube_config(config_file=str(path) if path else None, client_configuration=cfg)
        return cls(cfg, **kw)

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        # kubernetes_asyncio's hook refreshes exec-plugin/OIDC tokens; it may be sync or async.
        hook: Any = self.cfg.refresh_api_key_hook
        if hook is not None:
            result = hook(self.cfg)
            if asyncio.iscoroutine(result):
                await result
        token = self.cfg.api_key.get("authorization") or self.cfg.api_key.get("BearerToken")
        if token:
            headers["Authorization"] = token if " " in token else f"Bearer {token}"
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = 60.0,
    ) -> JSON:
        data = None if body is None else json.dumps(body)
        if data is not None and content_type is None:
            content_type = "application/json"
        if self._limiter is not None:
            await self._limiter.acquire()
        async with self._session.request(
            method,
            self.base + path,
            params=_params(params),
            data=data,
            headers=await self._headers(content_type),
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            payload = await resp.read()
            if resp.status >= 400:
                raise _api_error(resp.status, payload, resp.headers.get("Retry-After"))
            return json.loads(payload) if payload else {}

    async def get(self, path: str, **params: str | int) -> JSON:
        return await self.request("GET", path, params=params)

    async def get_or_none(self, path: str) -> JSON | None:
        try:
            return await self.get(path)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any, content_type: str = MERGE, **params: str | int) -> JSON:
        return await self.request("PATCH", path, body=body, content_type=content_type, params=params)

    async def apply(self, path: str, body: JSON, field_manager: str, force: bool = True) -> JSON:
        """Server-side apply (JSON is valid YAML, so the body goes as JSON)."""
        params: dict[str, str | int] = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        return await self.request("PATCH", path, body=body, content_type=APPLY, params=params)

    async def delete(self, path: str, body: JSON | None = None, **params: str | int) -> JSON | None:
        try:
            return await self.request("DELETE", path, body=body, params=params)
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def watch(
        self,
        path: str,
        *,
        resource_version: str | None = None,
        timeout_seconds: int = 300,
        **params: str | int,
    ) -> AsyncIterator[JSON]:
        """One watch request: yields events until the server ends it. Callers re-list on 410 Gone."""
        query: dict[str, str | int] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
            **params,
        }
        if resource_version:
            query["resourceVersion"] = resource_version
        async with self._session.get(
            self.base + path,
            params=_params(query),
            headers=await self._headers(None),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30),
        ) as resp:
            if resp.status >= 400:
                raise _api_error(resp.status, await resp.read(), resp.headers.get("Retry-After"))
            buf = b""
            async for chunk in resp.content.iter_any():
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            obj = event.get("object", {})
                            raise ApiError(
                                obj.get("code", 500), obj.get("reason", ""), obj.get("message", "")
                            )
                        yield event


def _params(params: Mapping[str, str | int] | None) -> dict[str, str] | None:
    return {k: str(v) for k, v in params.items()} if params else None


def _api_error(status: int, payload: bytes, retry_after: str | None) -> ApiError:
    reason, message = "", payload.decode(errors="replace")[:500]
    with contextlib.suppress(ValueError):
        doc = json.loads(payload)
        reason, message = doc.get("reason", ""), doc.get("message", message)
    delay = None
    with contextlib.suppress(TypeError, ValueError):
        delay = float(retry_after) if retry_after else None
    return ApiError(status, reason, message, delay)


async def list_all(client: KubeClient, path: str, **params: str | int) -> tuple[list[JSON], str]:
    """Every item of a collection (paginated) and the list's resourceVersion to watch from."""
    items: list[JSON] = []
    cont = ""
    while True:
        page_params: dict[str, str | int] = {"limit": 500, **params}
        if cont:
            page_params["continue"] = cont
        page = await client.get(path, **page_params)
        items.extend(page.get("items") or [])
        cont = page.get("metadata", {}).get("continue", "")
        if not cont:
            return items, page.get("metadata", {}).get("resourceVersion", "")
