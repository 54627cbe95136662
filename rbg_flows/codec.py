"""Payload privacy: an AES-GCM payload codec and its keys.

Pod templates carry env values (tokens, endpoints) and every workflow input, signal, query answer and
activity result holds them, so with a codec configured every payload is stored encrypted in Temporal's
history; only processes holding a key (and the codec server, for the UI) can read them.

Keys are 32 random bytes, base64, one per line of a key file (`--codec-key-file`, `RBG_CODEC_KEY_FILE`)
or separated by commas/whitespace in `RBG_CODEC_KEY`. The first key encrypts; all of them decrypt, so a
key is rotated by putting a new one first and dropping the old one once no history needs it. Each
payload names its key by an id derived from the key, so the id reveals nothing and needs no bookkeeping.

Pure crypto and key loading: no Temporal client, no Kubernetes, no workflow code.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_FILE_ENV = "RBG_CODEC_KEY_FILE"
KEY_ENV = "RBG_CODEC_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
_HOW = f"pass --codec-key-file or set {KEY_FILE_ENV} / {KEY_ENV}"


class CodecError(Exception):
    """A payload this process cannot read, or keys it cannot use; the message says which and why."""


def key_id(key: bytes) -> str:
    # A domain-separated hash: names the key without revealing anything about it.
    return hashlib.sha256(b"rbg-flows payload key\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    current: str
    keys: Mapping[str, bytes]

    @classmethod
    def of(cls, keys: Sequence[bytes]) -> Keyring:
        if not keys:
            raise CodecError("no codec key given")
        bad = [i for i, k in enumerate(keys, 1) if len(k) != KEY_BYTES]
        if bad:
            raise CodecError(
                f"codec key {bad[0]} is not {KEY_BYTES} bytes (make one: head -c32 /dev/urandom | base64)"
            )
        return cls(current=key_id(keys[0]), keys={key_id(k): k for k in keys})

    @classmethod
    def parse(cls, text: str, source: str) -> Keyring:
        """Base64 keys separated by newlines, commas or spaces; `#` starts a comment."""
        words = [w for line in text.splitlines() for w in re.split(r"[\s,]+", line.split("#", 1)[0]) if w]
        keys = []
        for i, word in enumerate(words, 1):
            try:
                keys.append(base64.b64decode(word, validate=True))
            except binascii.Error as e:
                raise CodecError(f"{source}: key {i} is not base64") from e
        try:
            return cls.of(keys)
        except CodecError as e:
            raise CodecError(f"{source}: {e}") from None


def load_keyring(
    key_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Keyring | None:
    """The keys from `key_file`, else from the environment; None when neither is configured."""
    env = os.environ if env is None else env
    path = key_file or env.get(KEY_FILE_ENV) or None
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise CodecError(f"cannot read the codec key file {path}: {e.strerror}") from e
        return Keyring.parse(text, str(path))
    if env.get(KEY_ENV):
        return Keyring.parse(env[KEY_ENV], KEY_ENV)
    return None


def load_codec(
    key_file: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> AesGcmCodec | None:
    keyring = load_keyring(key_file, env)
    return None if keyring is None else AesGcmCodec(keyring)


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


class AesGcmCodec(PayloadCodec):
    """Encrypts the whole serialised payload (its metadata too, so even its encoding is hidden) under the
    current key, with the key id as associated data. Payloads that are not encrypted pass through on
    decode: histories written before the codec was enabled stay readable."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._aead = {kid: AESGCM(k) for kid, k in keyring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) if is_encrypted(p) else p for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        kid = self.keyring.current
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[kid].encrypt(nonce, payload.SerializeToString(), kid.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid.encode()}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        aead = self._aead.get(kid)
        if aead is None:
            raise CodecError(
                f"payload encrypted with codec key id {kid or '(none)'}, not one of this process's keys "
                f"({', '.join(self._aead)}): add that key to the key file"
            )
        try:
            plain = aead.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], kid.encode())
        except InvalidTag:
            raise CodecError(
                f"encrypted payload (key id {kid}) failed authentication: it was altered or is corrupt"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


class RefuseEncrypted(PayloadCodec):
    """The codec of a process with no key: writes in clear, and on meeting an encrypted payload says what
    is missing (instead of the converter's bare 'unknown encoding')."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        for p in payloads:
            if is_encrypted(p):
                kid = p.metadata.get(KEY_ID, b"").decode(errors="replace")
                raise CodecError(
                    f"Temporal payloads are encrypted (codec key id {kid}) and no key is configured: {_HOW}"
                )
        return list(payloads)


def add_key_file_argument(p: argparse.ArgumentParser) -> None:
    """The one flag every process takes, so they all read the same keys."""
    p.add_argument(
        "--codec-key-file",
        default=os.environ.get(KEY_FILE_ENV),
        metavar="PATH",
        help=f"encrypt Temporal payloads with these keys (base64, one a line, first = current; "
        f"env {KEY_FILE_ENV}, or the keys themselves in {KEY_ENV})",
    )
