"""Temporal payloads are encrypted at rest, open again with a rotated-out key, and decode through
the API's codec server for the Web UI and the CLI."""

from __future__ import annotations

import base64
import json

import httpx
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from crucible.core.codec import ENCODING, KEY_ID, PayloadEncryption
from crucible.core.config import Settings
from crucible.core.secrets import SecretBox, new_key
from tests.support.probe import ProbeInput
from tests.support.runs import start_probe


async def test_a_runs_payloads_are_encrypted_in_temporal(
    client: Client, worker: Worker, task_queue: str
) -> None:
    handle = await start_probe(client, task_queue, ProbeInput(steps=2, fail_with="a-telltale-reason"))
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [payload] = started.input.payloads
    assert payload.metadata["encoding"] == ENCODING and payload.metadata[KEY_ID] == b"k1"
    assert b"a-telltale-reason" not in history.to_json().encode()
    assert b"fail_with" not in payload.data


async def test_payloads_sealed_with_a_rotated_out_key_still_open_and_plain_ones_pass() -> None:
    old, new = new_key(), new_key()
    plain = DataConverter.default.payload_converter.to_payloads([{"token": "t-1"}])[0]
    [sealed] = await PayloadEncryption(SecretBox(old, key_id="k1")).encode([plain])
    rotated = PayloadEncryption(SecretBox(new, key_id="k2", previous={"k1": old}))
    assert await rotated.decode([sealed]) == [plain]
    assert await rotated.decode([plain]) == [plain], "payloads written before encryption pass through"
    [resealed] = await rotated.encode([plain])
    assert resealed.metadata[KEY_ID] == b"k2"


def _payloads_json(*payloads: Payload) -> dict[str, object]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


async def test_the_codec_server_decodes_for_the_web_ui(api: httpx.AsyncClient, settings: Settings) -> None:
    plain = DataConverter.default.payload_converter.to_payloads(["hello"])[0]
    assert settings.secrets_key is not None
    [sealed] = await PayloadEncryption(SecretBox(settings.secrets_key.get_secret_value())).encode([plain])
    ui = settings.effective_temporal_ui_url
    decoded = await api.post(
        "/codec/decode",
        content=json.dumps(_payloads_json(sealed)),
        headers={"content-type": "application/json", "origin": ui, "x-namespace": "default"},
    )
    assert decoded.status_code == 200, decoded.text
    assert decoded.headers["access-control-allow-origin"] == ui
    [shown] = decoded.json()["payloads"]
    assert base64.b64decode(shown["data"]) == b'"hello"'

    encoded = await api.post("/codec/encode", json=_payloads_json(plain))
    [again] = encoded.json()["payloads"]
    assert base64.b64decode(again["metadata"]["encoding"]) == ENCODING

    preflight = await api.options("/codec/decode", headers={"origin": ui})
    assert preflight.status_code == 204 and "X-Namespace" in preflight.headers["access-control-allow-headers"]
    stranger = await api.options("/codec/decode", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers
    assert (await api.post("/codec/decode", content=b"{not json")).status_code == 422
    # Outside dev mode, decoding needs a signed-in caller like every other route.
    anonymous = await api.post("/codec/decode", json=_payloads_json(sealed), headers={"authorization": ""})
    assert anonymous.status_code == 401
