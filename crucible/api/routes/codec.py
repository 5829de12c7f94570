"""Temporal's codec server protocol: ``POST /codec/encode`` and ``POST /codec/decode``.

Point the Web UI (its "codec endpoint" setting, or ``temporal server start-dev
--ui-codec-endpoint``) or the CLI (``temporal workflow show --codec-endpoint``) at
``<api>/codec`` and they show Crucible's encrypted payloads decoded. Bodies are ``Payloads``
in protobuf's JSON form. The Web UI calls it from the browser, so the UI's origin is allowed
by CORS. Outside dev mode it needs a signed-in caller, as every route does (the CLI sends
``--codec-auth "Bearer <token>"``); the dev stack's Web UI has no sign-in, so in dev mode it
is open. In production, put ``/codec`` behind the same sign-in as the Web UI too (see the
README's production section).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from pydantic import BaseModel, ConfigDict, Field
from temporalio.api.common.v1 import Payloads

from crucible.api.auth_deps import AuthDep, bearer_scheme, current_principal
from crucible.api.deps import SettingsDep
from crucible.core.auth import Principal
from crucible.core.codec import payload_codec
from crucible.core.config import Settings
from crucible.core.errors import DependencyUnavailableError


async def codec_caller(
    settings: SettingsDep,
    auth: AuthDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal | None:
    """The signed-in caller; in dev mode a call without credentials is let through (None)."""
    if credentials is None and settings.dev_mode:
        return None
    return await current_principal(auth, credentials)


router = APIRouter(prefix="/codec", tags=["codec"], dependencies=[Depends(codec_caller)])
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


Base64 = Annotated[str, Field(pattern=r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")]


class PayloadJson(BaseModel):
    """A ``Payload`` in protobuf's JSON form: metadata values and data in base64."""

    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, Base64] = Field(default_factory=dict)
    data: Base64 = ""


class PayloadsJson(BaseModel):
    """``Payloads`` in protobuf's JSON form, what the Web UI and the CLI send."""

    model_config = ConfigDict(extra="forbid")

    payloads: list[PayloadJson] = Field(default_factory=list)


async def _convert(body: PayloadsJson, request: Request, settings: Settings, *, encode: bool) -> Response:
    codec = payload_codec(settings)
    if codec is None:
        raise DependencyUnavailableError("codec", "no secrets key is configured (CRUCIBLE_SECRETS_KEY)")
    payloads = json_format.ParseDict(body.model_dump(exclude_defaults=True), Payloads())
    converted = await (codec.encode if encode else codec.decode)(payloads.payloads)
    answer = json_format.MessageToJson(Payloads(payloads=converted))
    return _cors(request, Response(answer, media_type=JSON), settings.effective_temporal_ui_url)


#: A credential is optional in dev mode only, where the dev Web UI calls without one: after
#: the HTTPBearer requirement FastAPI lists, "or none".
_OPENAPI: dict[str, Any] = {"security": [{}]}
_RESPONSES: dict[int | str, dict[str, Any]] = {503: {"description": "No secrets key is configured"}}


@router.post(
    "/encode",
    summary="Encrypt payloads (Temporal codec server protocol)",
    openapi_extra=_OPENAPI,
    responses=_RESPONSES,
)
async def encode(body: PayloadsJson, request: Request, settings: SettingsDep) -> Response:
    return await _convert(body, request, settings, encode=True)


@router.post(
    "/decode",
    summary="Decrypt payloads (Temporal codec server protocol)",
    openapi_extra=_OPENAPI,
    responses=_RESPONSES,
)
async def decode(body: PayloadsJson, request: Request, settings: SettingsDep) -> Response:
    return await _convert(body, request, settings, encode=False)


@router.options("/{action}", include_in_schema=False)
async def preflight(request: Request, settings: SettingsDep) -> Response:
    return _cors(request, Response(status_code=204), settings.effective_temporal_ui_url)
