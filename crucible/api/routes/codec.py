"""Temporal's codec server protocol: ``POST /codec/encode`` and ``POST /codec/decode``.

Point the Web UI (its "codec endpoint" setting, or ``temporal server start-dev
--ui-codec-endpoint``) or the CLI (``temporal workflow show --codec-endpoint``) at
``<api>/codec`` and they show Crucible's encrypted payloads decoded. Bodies are ``Payloads``
in protobuf's JSON form. The Web UI calls it from the browser, so the UI's origin is allowed
by CORS. Anyone who can reach it can decode: in production, route ``/codec`` only through
the same authentication as the Web UI (see the README's production section).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from crucible.api.deps import SettingsDep
from crucible.core.codec import payload_codec
from crucible.core.errors import DependencyUnavailableError, InvalidRequestError

router = APIRouter(prefix="/codec", tags=["codec"])
JSON = "application/json"


def _cors(request: Request, response: Response, ui_url: str) -> Response:
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") in _origins(ui_url):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, X-Namespace, Authorization"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Vary"] = "Origin"
    return response


def _origins(ui_url: str) -> set[str]:
    """The Web UI's origin, under both loopback names (the dev UI is opened as either)."""
    origins = {ui_url.rstrip("/")}
    for a, b in (("127.0.0.1", "localhost"), ("localhost", "127.0.0.1")):
        origins |= {o.replace(a, b) for o in origins}
    return origins


async def _convert(request: Request, settings: SettingsDep, *, encode: bool) -> Response:
    codec = payload_codec(settings)
    if codec is None:
        raise DependencyUnavailableError("codec", "no secrets key is configured (CRUCIBLE_SECRETS_KEY)")
    payloads = Payloads()
    try:
        json_format.Parse(await request.body(), payloads)
    except json_format.ParseError as exc:
        raise InvalidRequestError.one(("body",), f"not Payloads in protobuf JSON: {exc}") from None
    converted = await (codec.encode if encode else codec.decode)(payloads.payloads)
    body = json_format.MessageToJson(Payloads(payloads=converted))
    return _cors(request, Response(body, media_type=JSON), settings.effective_temporal_ui_url)


@router.post("/encode", summary="Encrypt payloads (Temporal codec server protocol)")
async def encode(request: Request, settings: SettingsDep) -> Response:
    return await _convert(request, settings, encode=True)


@router.post("/decode", summary="Decrypt payloads (Temporal codec server protocol)")
async def decode(request: Request, settings: SettingsDep) -> Response:
    return await _convert(request, settings, encode=False)


@router.options("/{action}", include_in_schema=False)
async def preflight(request: Request, settings: SettingsDep) -> Response:
    return _cors(request, Response(status_code=204), settings.effective_temporal_ui_url)
