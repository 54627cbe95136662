"""`rbg-flows codec-server`: Temporal's remote codec endpoints (`POST /encode`, `POST /decode`), so the
Temporal UI and `temporal workflow show --codec-endpoint` show the payloads that the codec encrypts.

Both take and answer `{"payloads": [...]}` (Payloads in protobuf JSON: base64 metadata values and data).
The UI calls the endpoint from the browser, hence CORS for the UI's origin. Whoever reaches `/decode`
reads every history, so a bearer token is required unless the server listens on loopback only.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from rbg_flows.codec import AesGcmCodec, CodecError, add_key_file_argument, load_codec

TOKEN_FILE_ENV = "RBG_CODEC_SERVER_TOKEN_FILE"
DEFAULT_UI_ORIGIN = "http://localhost:8233"
MAX_BODY = 8 * 1024 * 1024  # a batch of payloads of up to Temporal's 2 MiB each, base64
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("codec-server", help="serve /encode and /decode for the Temporal UI and CLI")
    add_key_file_argument(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--ui-origin",
        action="append",
        default=[],
        help=f"origin of the Temporal UI allowed to call (repeatable; default {DEFAULT_UI_ORIGIN})",
    )
    p.add_argument(
        "--token-file",
        default=os.environ.get(TOKEN_FILE_ENV),
        metavar="PATH",
        help=f"require 'Authorization: Bearer <its content>' (env {TOKEN_FILE_ENV})",
    )
    p.set_defaults(func=run)


def build_app(codec: AesGcmCodec, origins: list[str], token: str | None = None) -> web.Application:
    allowed = set(origins)

    @web.middleware
    async def cors_and_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        elif token is not None and not _bearer_ok(request, token):
            response = web.json_response({"error": "missing or wrong bearer token"}, status=401)
        else:
            response = await handler(request)
        if origin in allowed:
            response.headers.update(
                {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Content-Type, X-Namespace, Authorization",
                    # The UI's "include cross-origin credentials" option sends cookies/auth.
                    "Access-Control-Allow-Credentials": "true",
                    "Vary": "Origin",
                }
            )
        return response

    def endpoint(transform: Callable[[Payloads], Awaitable[Payloads]]) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                payloads = json_format.Parse(await request.text(), Payloads(), ignore_unknown_fields=True)
            except json_format.ParseError as e:
                return web.json_response({"error": f"not a Payloads JSON: {e}"}, status=400)
            try:
                out = await transform(payloads)
            except CodecError as e:
                return web.json_response({"error": str(e)}, status=400)
            return web.Response(text=json_format.MessageToJson(out), content_type="application/json")

        return handle

    async def encode(p: Payloads) -> Payloads:
        return Payloads(payloads=await codec.encode(p.payloads))

    async def decode(p: Payloads) -> Payloads:
        return Payloads(payloads=await codec.decode(p.payloads))

    app = web.Application(middlewares=[cors_and_auth], client_max_size=MAX_BODY)
    # Also under a namespace segment, for an endpoint templated as `…/{namespace}`; one key set serves all.
    for prefix in ("", "/{namespace}"):
        app.router.add_post(f"{prefix}/encode", endpoint(encode))
        app.router.add_post(f"{prefix}/decode", endpoint(decode))
    return app


def _bearer_ok(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        codec = load_codec(args.codec_key_file)
    except CodecError as e:
        raise SystemExit(f"error: {e}") from None
    if codec is None:
        raise SystemExit(
            "error: no codec key: pass --codec-key-file or set RBG_CODEC_KEY_FILE / RBG_CODEC_KEY"
        )
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    if token == "":
        raise SystemExit(f"error: the token file {args.token_file} is empty")
    if token is None and not _loopback(args.host):
        raise SystemExit(
            f"error: listening on {args.host} decrypts for anyone who reaches it: give --token-file"
        )
    app = build_app(codec, args.ui_origin or [DEFAULT_UI_ORIGIN], token)
    print(f"codec server on http://{args.host}:{args.port} (key id {codec.keyring.current})", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None)
    return 0
