"""The payload codec (rbg_flows.codec) and the codec server's HTTP surface (rbg_flows.cli.codec_server)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from rbg_flows.cli.codec_server import build_app
from rbg_flows.codec import (
    ENCODING,
    KEY_ID,
    AesGcmCodec,
    CodecError,
    Keyring,
    RefuseEncrypted,
    key_id,
    load_codec,
    load_keyring,
)
from rbg_flows.messages import RbgKey

SECRET = "HF_TOKEN=hf_secret_value lmsysorg/sglang:v0.4"


def new_key() -> bytes:
    return os.urandom(32)


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def payload(text: str = SECRET) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([{"env": text}])[0]


async def test_round_trip_hides_data_and_encoding() -> None:
    codec = AesGcmCodec(Keyring.of([new_key()]))
    original = payload()
    [sealed] = await codec.encode([original])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == codec.keyring.current.encode()
    assert b"hf_secret_value" not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [original]


async def test_each_encryption_is_fresh() -> None:
    codec = AesGcmCodec(Keyring.of([new_key()]))
    a, b = await codec.encode([payload(), payload()])
    assert a.data != b.data


async def test_converter_round_trip_of_a_model() -> None:
    import dataclasses

    converter = dataclasses.replace(
        pydantic_data_converter, payload_codec=AesGcmCodec(Keyring.of([new_key()]))
    )
    key = RbgKey(namespace="ns", name="g")
    encoded = await converter.encode([key])
    assert all(p.metadata["encoding"] == ENCODING for p in encoded)
    assert await converter.decode(encoded, [RbgKey]) == [key]


async def test_rotation_decrypts_with_any_known_key_and_encrypts_with_the_first() -> None:
    old, new = new_key(), new_key()
    [by_old] = await AesGcmCodec(Keyring.of([old])).encode([payload()])
    rotated = AesGcmCodec(Keyring.of([new, old]))
    assert await rotated.decode([by_old]) == [payload()]
    [by_new] = await rotated.encode([payload()])
    assert by_new.metadata[KEY_ID] == key_id(new).encode()
    # A process that still has only the old key cannot read what the new one wrote, and says so.
    with pytest.raises(CodecError, match=f"key id {key_id(new)}, not one of this process's keys"):
        await AesGcmCodec(Keyring.of([old])).decode([by_new])


async def test_tampered_ciphertext_fails_authentication() -> None:
    codec = AesGcmCodec(Keyring.of([new_key()]))
    [sealed] = await codec.encode([payload()])
    for i in (0, 20, len(sealed.data) - 1):  # nonce, ciphertext, tag
        data = bytearray(sealed.data)
        data[i] ^= 1
        bad = Payload(metadata=dict(sealed.metadata), data=bytes(data))
        with pytest.raises(CodecError, match="failed authentication"):
            await codec.decode([bad])


async def test_a_key_id_swapped_in_the_metadata_fails() -> None:
    k1, k2 = new_key(), new_key()
    codec = AesGcmCodec(Keyring.of([k1, k2]))
    [sealed] = await codec.encode([payload()])
    swapped = Payload(metadata={**sealed.metadata, KEY_ID: key_id(k2).encode()}, data=sealed.data)
    with pytest.raises(CodecError, match="failed authentication"):
        await codec.decode([swapped])


async def test_clear_payloads_pass_through_decode() -> None:
    # Histories written before the codec was enabled stay readable.
    codec = AesGcmCodec(Keyring.of([new_key()]))
    assert await codec.decode([payload()]) == [payload()]


async def test_without_a_key_an_encrypted_payload_names_what_is_missing() -> None:
    [sealed] = await AesGcmCodec(Keyring.of([new_key()])).encode([payload()])
    refuse = RefuseEncrypted()
    assert await refuse.encode([payload()]) == [payload()]
    assert await refuse.decode([payload()]) == [payload()]
    with pytest.raises(CodecError, match=r"encrypted .* no key is configured: pass --codec-key-file"):
        await refuse.decode([sealed])


def test_key_file_first_key_is_current_comments_and_blank_lines_ignored(tmp_path: Path) -> None:
    k1, k2 = new_key(), new_key()
    f = tmp_path / "keys"
    f.write_text(f"# current\n{b64(k1)}\n\n{b64(k2)}  # previous\n")
    ring = load_keyring(f, env={})
    assert ring is not None
    assert ring.current == key_id(k1)
    assert set(ring.keys) == {key_id(k1), key_id(k2)}


def test_keys_from_env_file_wins_and_nothing_configured_is_none(tmp_path: Path) -> None:
    k1, k2 = new_key(), new_key()
    f = tmp_path / "keys"
    f.write_text(b64(k1))
    ring = load_keyring(None, env={"RBG_CODEC_KEY": f"{b64(k2)},{b64(k1)}"})
    assert ring is not None and ring.current == key_id(k2) and len(ring.keys) == 2
    ring = load_keyring(None, env={"RBG_CODEC_KEY_FILE": str(f), "RBG_CODEC_KEY": b64(k2)})
    assert ring is not None and ring.current == key_id(k1)
    assert load_codec(None, env={}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no codec key"),
        ("not base64!", "key 1 is not base64"),
        (base64.b64encode(b"short").decode(), "key 1 is not 32 bytes"),
    ],
)
def test_bad_keys_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "keys"
    f.write_text(text)
    with pytest.raises(CodecError, match=message):
        load_keyring(f, env={})


def test_missing_key_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(CodecError, match="cannot read the codec key file"):
        load_keyring(tmp_path / "nope", env={})


# -- the codec server ---------------------------------------------------------------------------
UI = "http://localhost:8233"


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], AesGcmCodec]]:
    codec = AesGcmCodec(Keyring.of([new_key()]))
    async with TestClient(TestServer(build_app(codec, [UI], token="s3cret"))) as client:
        yield client, codec


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=list(payloads)))


AUTH = {"Authorization": "Bearer s3cret"}


async def test_server_encode_then_decode(
    server: tuple[TestClient[web.Request, web.Application], AesGcmCodec],
) -> None:
    client, codec = server
    r = await client.post("/encode", data=body(payload()), headers=AUTH)
    assert r.status == 200
    encoded = json_format.Parse(await r.text(), Payloads())
    assert encoded.payloads[0].metadata["encoding"] == ENCODING
    assert await codec.decode(encoded.payloads) == [payload()]
    r = await client.post("/default/decode", data=await r.text(), headers=AUTH)
    decoded = json.loads(await r.text())
    assert base64.b64decode(decoded["payloads"][0]["data"]) == payload().data


async def test_server_refuses_without_token_and_reports_bad_input(
    server: tuple[TestClient[web.Request, web.Application], AesGcmCodec],
) -> None:
    client, _ = server
    assert (await client.post("/decode", data=body(payload()))).status == 401
    bad = {**AUTH, "Authorization": "Bearer wrong"}
    assert (await client.post("/decode", data=body(payload()), headers=bad)).status == 401
    r = await client.post("/decode", data="{nope", headers=AUTH)
    assert r.status == 400
    tampered = Payload(metadata={"encoding": ENCODING, KEY_ID: b"0" * 16}, data=b"x" * 40)
    r = await client.post("/decode", data=body(tampered), headers=AUTH)
    assert r.status == 400 and "not one of this process's keys" in (await r.json())["error"]


async def test_server_cors_for_the_ui_origin_only(
    server: tuple[TestClient[web.Request, web.Application], AesGcmCodec],
) -> None:
    client, _ = server
    preflight = {"Origin": UI, "Access-Control-Request-Method": "POST"}
    r = await client.options("/decode", headers=preflight)
    assert r.status == 204  # a preflight carries no credentials
    assert r.headers["Access-Control-Allow-Origin"] == UI
    assert "X-Namespace" in r.headers["Access-Control-Allow-Headers"]
    r = await client.post("/decode", data=body(payload()), headers={**AUTH, "Origin": UI})
    assert r.headers["Access-Control-Allow-Origin"] == UI
    r = await client.options("/decode", headers={**preflight, "Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
