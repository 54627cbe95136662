"""A lean async Kubernetes client speaking JSON dicts over one aiohttp session.

kubernetes_asyncio loads the kubeconfig (certificates, tokens, exec plugins); requests go out raw so
hot paths (the node simulator's watches and status patches, the orchestrator's server-side applies)
pay no model (de)serialisation. The client remembers where its configuration came from, so a 401 (a
rotated service-account token, an exec-plugin token revoked before its stated expiry) re-reads the
credentials and retries once.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiolimiter import AsyncLimiter
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import load_incluster_config, load_kube_config

from rbg_flows.observability.kubeapi import kube_verb, record_request

JSON = dict[str, Any]
# The field manager of everything rbg_flows applies: one owner, so server-side apply is idempotent.
FIELD_MANAGER = "rbg-flows"

MERGE = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
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


ConfigLoader = Callable[[], Awaitable[Configuration]]


def user_agent(component: str | None = None) -> str:
    """`rbg-flows/<version> (<component>)`: what the API server's audit log and request metrics know a
    process of rbg_flows by (every process logs in with whatever identity the cluster gives it, often the
    same one, so the identity alone cannot tell the worker's requests from a CLI's)."""
    try:
        version = importlib.metadata.version("rbg-flows")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"rbg-flows/{version} ({component})" if component else f"rbg-flows/{version}"


class KubeClient:
    def __init__(
        self,
        cfg: Configuration,
        *,
        max_connections: int = 64,
        qps: float | None = None,
        reload: ConfigLoader | None = None,
        agent: str | None = None,
    ):
        self.cfg = cfg
        self.agent = agent or user_agent()
        self._reload = reload
        self._reload_lock = asyncio.Lock()
        self.credentials_generation = 0  # bumped by each re-read of the credentials
        # The Python client has no client-side rate limit; a token bucket protects the API server from a
        # burst of operations (client-go's default is 5 QPS, far too low for a controller of 1,000 groups).
        self._limiter = AsyncLimiter(qps, 1.0) if qps else None
        self.base = str(cfg.host).rstrip("/")
        ctx: ssl.SSLContext | bool
        self._ssl: ssl.SSLContext | None = None
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
            self._ssl = ctx
        else:
            ctx = False
        self._connector = aiohttp.TCPConnector(ssl=ctx, limit=max_connections)
        self._session = aiohttp.ClientSession(
            connector=self._connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            json_serialize=json.dumps,
        )

    @classmethod
    async def from_kubeconfig(cls, path: str | Path | None = None, **kw: Any) -> Self:
        async def load() -> Configuration:
            cfg = Configuration()
            await load_kube_config(config_file=str(path) if path else None, client_configuration=cfg)
            return cfg

        return cls(await load(), reload=load, **kw)

    @classmethod
    def from_incluster(cls, **kw: Any) -> Self:
        """The pod's service account (raises kubernetes_asyncio's ConfigException outside a cluster)."""

        async def load() -> Configuration:
            cfg = Configuration()
            load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            return cfg

        cfg = Configuration()
        load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return cls(cfg, reload=load, **kw)

    async def _reauthenticate(self, seen: int) -> bool:
        """After a 401: re-read the credentials, once however many requests were refused together (`seen`
        is the generation they were sent with). False when there is nowhere to re-read them from."""
        if self._reload is None:
            return False
        async with self._reload_lock:
            if self.credentials_generation == seen:
                cfg = await self._reload()
                if self._ssl is not None and cfg.cert_file and cfg.key_file:
                    # New connections present the re-read certificate; the server URL stays as it was.
                    self._ssl.load_cert_chain(cfg.cert_file, cfg.key_file)
                self.cfg = cfg
                self.credentials_generation += 1
        return True

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.agent}
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
        seen = self.credentials_generation
        status, payload, retry_after = await self._send(method, path, params, data, content_type, timeout)
        if status == 401 and await self._reauthenticate(seen):
            status, payload, retry_after = await self._send(method, path, params, data, content_type, timeout)
        if status >= 400:
            raise _api_error(status, payload, retry_after)
        return json.loads(payload) if payload else {}

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        data: str | None,
        content_type: str | None,
        timeout: float | None,
    ) -> tuple[int, bytes, str | None]:
        if self._limiter is not None:
            await self._limiter.acquire()
        verb = kube_verb(method, path, params, content_type)
        began, code = time.monotonic(), "error"  # stays "error" when no response comes back
        try:
            async with self._session.request(
                method,
                self.base + path,
                params=_params(params),
                data=data,
                headers=await self._headers(content_type),
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                payload = await resp.read()
                code = str(resp.status)
                return resp.status, payload, resp.headers.get("Retry-After")
        finally:
            record_request(verb, code, time.monotonic() - began)

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
        seen = self.credentials_generation
        for attempt in range(2):
            began = time.monotonic()
            async with self._session.get(
                self.base + path,
                params=_params(query),
                headers=await self._headers(None),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_seconds + 30),
            ) as resp:
                record_request("watch", resp.status, time.monotonic() - began)
                if resp.status == 401 and attempt == 0 and await self._reauthenticate(seen):
                    continue
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
                return


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
