"""Temporal payloads encrypted at rest: a payload codec, AES-GCM with a key id.

Every payload a Crucible client or worker writes to Temporal (workflow inputs and results,
activity arguments, signals, queries, memos) is sealed with ``CRUCIBLE_SECRETS_KEY``; its
metadata says ``encoding: binary/encrypted`` and which key sealed it, so keys can rotate
(``CRUCIBLE_SECRETS_PREVIOUS_KEYS`` still opens old ones). A payload that is not encrypted
(histories written before the codec, or by tools without it) is passed through as is.
Search attributes are not payloads: they stay readable for ``temporal workflow list --query``.

The API serves the same codec at ``/codec/encode`` and ``/codec/decode`` (Temporal's codec
server protocol), so the Web UI and the ``temporal`` CLI can show decoded payloads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from crucible.core.config import Settings
from crucible.core.secrets import SecretBox, secret_box

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
#: Bound into every ciphertext: a sealed secret cannot be passed off as a payload, or back.
CONTEXT = b"crucible/temporal-payload"


class PayloadEncryption(PayloadCodec):
    def __init__(self, box: SecretBox) -> None:
        self.box = box

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._open(p) for p in payloads]

    def _seal(self, payload: Payload) -> Payload:
        key_id, blob = self.box.seal_bytes(payload.SerializeToString(), CONTEXT)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=blob)

    def _open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata[KEY_ID].decode()
        opened = Payload()
        opened.ParseFromString(self.box.open_bytes(key_id, payload.data, CONTEXT))
        return opened


def payload_codec(settings: Settings) -> PayloadEncryption | None:
    """The codec for these settings; None without a secrets key (payloads stay plain)."""
    if settings.secrets_key is None:
        return None
    return PayloadEncryption(secret_box(settings))


def data_converter(settings: Settings) -> DataConverter:
    """Temporal's default converter, with payloads encrypted when a secrets key is configured."""
    codec = payload_codec(settings)
    if codec is None:
        return DataConverter.default
    return dataclasses.replace(DataConverter.default, payload_codec=codec)
