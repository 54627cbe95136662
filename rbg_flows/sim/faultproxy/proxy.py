"""A loopback API fault proxy: sits in front of the sim's kube-apiserver and injects API faults.

Chaos tests point controllers at the proxy instead of the API server. Requests pass through
unchanged (bodies and responses are streamed, so watches behave as they do against the API server)
unless a fault rule fires: then the proxy answers itself with the `metav1.Status` the API server
would send for a conflict, a throttle or an internal error, or it hangs and drops the connection.

Identity survives the hop the way it does through the aggregation layer: a client that connected
with a certificate is forwarded over a connection authenticated with the front-proxy client
certificate, with its user and groups in `X-Remote-User` / `X-Remote-Group` (request-header
authentication); a bearer token is forwarded as is over a connection without a client certificate.

A second, plain-HTTP listener on 127.0.0.1 takes JSON commands (`FaultProxyControl` is its client),
so a test process can drive a proxy that runs elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from pydantic import ValidationError
from yarl import URL

from rbg_flows.sim.faultproxy.classify import RequestInfo, classify
from rbg_flows.sim.faultproxy.headers import (
    forward_request_headers,
    forward_response_headers,
    identity_from_peercert,
)
from rbg_flows.sim.faultproxy.rules import _RULES_ADAPTER, FaultInjector, FaultRule, fault_status, status_body
from rbg_flows.sim.pki import ClusterPki

log = structlog.get_logger(__name__)


# ---------------------------------------------------------------------------------------------
# The proxy


@dataclass(eq=False)
class _Watch:
    upstream: aiohttp.ClientResponse
    info: RequestInfo
    cut: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


class FaultProxy:
    """TLS reverse proxy in front of a kube-apiserver, with fault injection and a control listener."""

    def __init__(
        self,
        upstream: str,
        ca_file: str | Path,
        serving_cert: str | Path,
        serving_key: str | Path,
        front_proxy_cert: str | Path,
        front_proxy_key: str | Path,
        *,
        rng: random.Random | None = None,
        rules: Iterable[FaultRule] = (),
        shutdown_timeout: float = 2.0,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.ca_file = Path(ca_file)
        self.serving_cert = Path(serving_cert)
        self.serving_key = Path(serving_key)
        self.front_proxy_cert = Path(front_proxy_cert)
        self.front_proxy_key = Path(front_proxy_key)
        self.injector = FaultInjector(rules, rng)
        self.requests_seen = 0
        self.watches_cut = 0
        self._shutdown_timeout = shutdown_timeout
        self._watches: set[_Watch] = set()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._control_runner: web.AppRunner | None = None
        self._cert_session: aiohttp.ClientSession | None = None
        self._plain_session: aiohttp.ClientSession | None = None
        self._url: str | None = None
        self._control_url: str | None = None

    @classmethod
    def from_pki(
        cls,
        upstream: str,
        pki: ClusterPki,
        *,
        rng: random.Random | None = None,
        rules: Iterable[FaultRule] = (),
    ) -> FaultProxy:
        # The API server's serving cert carries SAN 127.0.0.1, so clients that trust the cluster CA
        # accept the proxy on loopback without a certificate of its own.
        return cls(
            upstream,
            pki.ca,
            pki.cert("apiserver"),
            pki.key("apiserver"),
            pki.cert("front-proxy-client"),
            pki.key("front-proxy-client"),
            rng=rng,
            rules=rules,
        )

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the fault proxy is not started")
        return self._url

    @property
    def control_url(self) -> str:
        if self._control_url is None:
            raise RuntimeError("the fault proxy is not started")
        return self._control_url

    def _server_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.serving_cert), str(self.serving_key))
        # Optional: token clients (service accounts, bearer kubeconfigs) show no certificate.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        # Go clients offer h2 first; aiohttp serves HTTP/1.1 only, so say so in the handshake.
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def _client_session(self, with_front_proxy_cert: bool) -> aiohttp.ClientSession:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if with_front_proxy_cert:
            ctx.load_cert_chain(str(self.front_proxy_cert), str(self.front_proxy_key))
        # limit=0: every watch holds a connection for its lifetime; a pool cap would make the
        # 101st watch of a busy controller wait forever for a slot.
        connector = aiohttp.TCPConnector(ssl=ctx, limit=0)
        return aiohttp.ClientSession(
            connector=connector,
            # No overall or read timeout: watches legitimately stay quiet for minutes.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            # Bodies pass through byte for byte (gzip included), and nothing the client did not
            # send is added, so the API server sees the client's own negotiation.
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent", "Content-Type"),
            # A shared jar would leak one client's cookies into another's requests.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0, control_port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("the fault proxy is already started")
        self._stopping = asyncio.Event()
        self._cert_session = self._client_session(with_front_proxy_cert=True)
        self._plain_session = self._client_session(with_front_proxy_cert=False)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app,
            # A client that goes away must take its upstream watch with it, not leave it open
            # until the next event tries to write.
            handler_cancellation=True,
            access_log=None,
            auto_decompress=False,
            max_line_size=65536,
            max_field_size=65536,
            shutdown_timeout=self._shutdown_timeout,
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port, ssl_context=self._server_ssl()).start()
        bound_port = self._runner.addresses[0][1]
        self._url = f"https://{host}:{bound_port}"

        control = web.Application()
        control.router.add_get("/rules", self._get_rules)
        control.router.add_post("/rules", self._post_rules)
        control.router.add_delete("/rules", self._delete_rules)
        control.router.add_post("/cut-watches", self._post_cut_watches)
        control.router.add_get("/stats", self._get_stats)
        self._control_runner = web.AppRunner(control, access_log=None, shutdown_timeout=1.0)
        await self._control_runner.setup()
        await web.TCPSite(self._control_runner, "127.0.0.1", control_port).start()
        self._control_url = f"http://127.0.0.1:{self._control_runner.addresses[0][1]}"
        log.info("fault proxy started", url=self._url, control_url=self._control_url, upstream=self.upstream)

    async def stop(self) -> None:
        self._stopping.set()  # wakes hanging requests
        await self.cut_watches()
        for runner in (self._runner, self._control_runner):
            if runner is not None:
                await runner.cleanup()
        for session in (self._cert_session, self._plain_session):
            if session is not None:
                await session.close()
        self._runner = self._control_runner = None
        self._cert_session = self._plain_session = None
        self._url = self._control_url = None
        log.info("fault proxy stopped")

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- rules, watches, counters -------------------------------------------------------------

    @property
    def rules(self) -> list[FaultRule]:
        return self.injector.rules

    def set_rules(self, rules: Iterable[FaultRule]) -> None:
        self.injector.set_rules(rules)
        log.info("fault rules set", rules=[r.model_dump(exclude_defaults=True) for r in self.injector.rules])

    def clear_rules(self) -> None:
        self.injector.clear()
        log.info("fault rules cleared")

    async def cut_watches(self, wait_seconds: float = 5.0) -> int:
        """End every in-flight watch as the API server does when it drops one; returns how many.

        Returns once the proxy has ended each stream (or after `wait_seconds` for a client too slow
        to take the last bytes). Watches still connecting upstream are not cut.
        """
        cut = [w for w in self._watches if not w.cut]
        for watch in cut:
            watch.cut = True
            # Closing the upstream response wakes the relay loop at once and releases the watch on
            # the API server; the relay then ends the client's stream cleanly.
            watch.upstream.close()
        if cut:
            self.watches_cut += len(cut)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(w.done.wait() for w in cut)), wait_seconds)
            log.info("watches cut", count=len(cut))
        return len(cut)

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests_seen,
            "injected": dict(self.injector.injected),
            "active_watches": len(self._watches),
            "watches_cut": self.watches_cut,
            "rules": [
                {"rule": r.model_dump(mode="json"), "injected": n}
                for r, n in zip(self.injector.rules, self.injector.fired(), strict=True)
            ],
        }

    # -- the proxy listener -------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests_seen += 1
        info = classify(request.method, request.path, request.query)
        if "Upgrade" in request.headers:
            # exec/attach/port-forward switch protocols (SPDY, WebSocket); relaying a raw upgraded
            # connection is out of scope for a chaos proxy, so refuse loudly rather than hang.
            body = status_body(
                501, "", "the fault proxy does not relay upgraded connections (exec, attach, port-forward)"
            )
            return web.json_response(body, status=501)
        rule = self.injector.choose(info)
        if rule is not None:
            log.info(
                "fault injected",
                action=rule.action,
                verb=info.verb,
                resource=info.resource,
                subresource=info.subresource,
                namespace=info.namespace,
                name=info.name,
            )
            return await self._inject(request, rule, info)
        return await self._forward(request, info)

    async def _inject(self, request: web.Request, rule: FaultRule, info: RequestInfo) -> web.StreamResponse:
        if rule.action == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), rule.hang_seconds)
            if request.transport is not None:
                request.transport.close()
            # Nothing reaches the client: aiohttp finds the transport closed and drops this.
            return web.Response(status=504)
        code, body, headers = fault_status(rule, info)
        return web.json_response(body, status=code, headers=headers)

    async def _forward(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        assert self._cert_session is not None and self._plain_session is not None
        headers = forward_request_headers(request.headers)
        peercert = request.transport.get_extra_info("peercert") if request.transport is not None else None
        identity = identity_from_peercert(peercert)
        if identity is not None:
            # The API server's x509 authenticator runs before token authenticators, so a request
            # with a certificate is the certificate's user: a token alongside it must not win.
            headers.popall("Authorization", None)
            headers["X-Remote-User"] = identity.user
            for group in identity.groups:
                headers.add("X-Remote-Group", group)
            session = self._cert_session
        else:
            session = self._plain_session
        # Encoded as received: re-encoding could change selectors or resourceVersion tokens.
        url = URL(self.upstream + request.raw_path, encoded=True)
        data = request.content if request.body_exists else None
        try:
            async with session.request(
                request.method, url, headers=headers, data=data, allow_redirects=False
            ) as upstream:
                return await self._relay(request, upstream, info)
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            # Reached only before any response byte went out (the relay handles its own failures).
            log.warning("upstream unreachable", error=str(exc), method=request.method, path=request.path)
            body = status_body(503, "ServiceUnavailable", f"the API server is unreachable: {exc}")
            return web.json_response(body, status=503)

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, info: RequestInfo
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=forward_response_headers(upstream.headers),
        )
        watch = _Watch(upstream, info) if info.is_watch else None
        try:
            await resp.prepare(request)
            if watch is not None:
                self._watches.add(watch)
            while True:
                try:
                    chunk = await upstream.content.readany()
                except aiohttp.ClientError as exc:
                    if watch is not None and watch.cut:
                        break
                    # The API server broke off mid-body: break the client's connection too, so a
                    # truncated body is not mistaken for a complete one.
                    log.warning("upstream broke mid-response", error=str(exc), path=request.path)
                    if request.transport is not None:
                        request.transport.close()
                    return resp
                if not chunk:
                    break
                # Written as soon as read, so each watch event reaches the client when it happens.
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionError:
            # The client went away; the `async with` around us closes the upstream side.
            pass
        finally:
            if watch is not None:
                self._watches.discard(watch)
                watch.done.set()
        return resp

    # -- the control listener -----------------------------------------------------------------

    async def _get_rules(self, request: web.Request) -> web.Response:
        return web.json_response([r.model_dump(mode="json") for r in self.rules])

    async def _post_rules(self, request: web.Request) -> web.Response:
        try:
            rules = _RULES_ADAPTER.validate_json(await request.read())
        except ValidationError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.set_rules(rules)
        return web.json_response([r.model_dump(mode="json") for r in self.rules])

    async def _delete_rules(self, request: web.Request) -> web.Response:
        cleared = len(self.rules)
        self.clear_rules()
        return web.json_response({"cleared": cleared})

    async def _post_cut_watches(self, request: web.Request) -> web.Response:
        return web.json_response({"cut": await self.cut_watches()})

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())
