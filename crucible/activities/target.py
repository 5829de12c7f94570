"""Sending one scenario to the service under test, and reading what comes back.

Nothing a target does can break a batch: a timeout, a refused connection, a malformed
response or a body that never ends becomes that scenario's ``request_error`` (or is
checked on what arrived), never an exception out of :meth:`Target.run`. So does a URL the
target policy refuses (the base URL, or a redirect hop): nothing is sent, and the
``request_error`` says ``target refused by policy: …`` with the rule.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import httpx

from crucible.core.qa.checks import REQUEST_ERROR, CheckFailure, Response, check_response
from crucible.core.qa.models import ExecuteOperationsInput
from crucible.core.qa.params import header_value, path_value, query_pairs, text
from crucible.core.qa.scenarios import Scenario
from crucible.core.qa.spec import Operation, Spec, is_json_media
from crucible.core.targets import TargetClient, TargetRefused

#: Bytes of each response body kept for the checks (after decompression); the rest is dropped.
MAX_RESPONSE_BYTES = 1024 * 1024
#: Bytes of each response body stored with its result, for people reading a report.
BODY_EXCERPT_BYTES = 2048
#: What a secret header's value becomes wherever a target echoed it back.
REDACTED = "[redacted]"


class Target:
    """Sends scenarios to the target under test and checks what comes back."""

    def __init__(
        self,
        client: TargetClient,
        spec: Spec,
        request: ExecuteOperationsInput,
        headers: dict[str, str],
    ) -> None:
        self.client = client
        self.spec = spec
        self.request = request
        self.user_headers = httpx.Headers(headers)
        #: What a scenario without headers or cookies of its own sends: the client's defaults
        #: and the user's headers over them (the request is built whole, here, not by the client).
        self.headers = httpx.Headers(client.headers)
        self.headers.update(self.user_headers)
        self.secrets = [value for value in headers.values() if len(value) >= 4]
        base = request.base_url.rstrip("/")
        self.base = base if urlsplit(base).path not in ("", "/") else base + spec.base_path

    async def run(self, op: Operation, scenario: Scenario) -> dict[str, Any]:
        """The scenario's result: status, timing, an excerpt of the body and every failed check."""
        try:
            response = await self._send(op, scenario)
        except Exception as exc:  # whatever the target did, it is this scenario's result
            return self._scrubbed(_request_error(exc, self.request.request_timeout_s))
        failures = check_response(
            self.spec, op, scenario, response, max_response_time_ms=self.request.max_response_time_ms
        )
        return self._scrubbed(
            {
                "status": response.status,
                "elapsed_ms": round(response.elapsed_ms, 2),
                "content_type": response.content_type,
                "body_excerpt": _excerpt(response),
                "truncated": response.truncated,
                "failures": [f.to_dict() for f in failures],
            }
        )

    def _scrubbed(self, value: Any) -> Any:
        """``value`` with the run's secret header values taken out, should a target echo them."""
        if not self.secrets:
            return value
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrubbed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrubbed(v) for v in value]
        return value

    def _build(self, op: Operation, scenario: Scenario) -> httpx.Request:
        path = op.path
        for name, value in scenario.path_params.items():
            path = path.replace("{" + name + "}", path_value(name, value, op.style_of("path", name)))
        url = self.base + path
        if scenario.query:
            pairs = [
                pair
                for name, value in scenario.query.items()
                for pair in query_pairs(name, value, op.style_of("query", name))
            ]
            url += "?" + urlencode(pairs)
        headers = self.headers
        if scenario.headers or scenario.cookies:
            headers = httpx.Headers(self.client.headers)
            for name, value in scenario.headers.items():
                headers[name] = header_value(value, op.style_of("header", name))
            headers.update(self.user_headers)  # the user's own headers (auth) win, whatever their case
            if scenario.cookies and "cookie" not in headers:
                headers["cookie"] = "; ".join(
                    f"{name}={header_value(value, op.style_of('cookie', name))}"
                    for name, value in scenario.cookies.items()
                )
        kwargs: dict[str, Any] = {}
        if scenario.has_body:
            media = (scenario.media_type or "application/json").split(";")[0].strip().lower()
            if is_json_media(media):
                kwargs["json"] = scenario.body
            elif media == "application/x-www-form-urlencoded" and isinstance(scenario.body, dict):
                kwargs["data"] = {k: text(v) for k, v in scenario.body.items()}
            elif media == "multipart/form-data" and isinstance(scenario.body, dict):
                kwargs["files"] = {
                    k: (f"{k}.bin", text(v).encode(), "application/octet-stream")
                    for k, v in scenario.body.items()
                }
            else:
                kwargs["content"] = text(scenario.body).encode()
                headers = httpx.Headers(headers)  # not the run's own
                headers.setdefault("content-type", media)
        return httpx.Request(op.method.upper(), url, headers=headers, **kwargs)

    async def _send(self, op: Operation, scenario: Scenario) -> Response:
        built = self._build(op, scenario)
        started = time.perf_counter()
        response: httpx.Response | None = None
        body = bytearray()
        truncated = False
        try:
            # The one deadline: the request carries no timeouts of its own.
            async with asyncio.timeout(self.request.request_timeout_s):
                if self.request.follow_redirects:
                    response = await self.client.send(built, stream=True, follow_redirects=True)
                else:
                    response = await self.client.send_single(built)
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        del body[MAX_RESPONSE_BYTES:]
                        truncated = True
                        break
        except (TimeoutError, httpx.TimeoutException):
            if response is None:
                raise  # no status line in time: a request_error
            truncated = True  # a stream that never ends: check what arrived in time
        finally:
            if response is not None:
                await response.aclose()
        elapsed_ms = (time.perf_counter() - started) * 1000
        decoded, cut = _decoded(bytes(body), response.headers.get("content-encoding"))
        return Response(
            status=response.status_code,
            content_type=response.headers.get("content-type"),
            body=decoded,
            elapsed_ms=elapsed_ms,
            truncated=truncated or cut,
        )


def _request_error(exc: Exception, timeout_s: float) -> dict[str, Any]:
    if isinstance(exc, TargetRefused):
        message, actual = exc.summary, "refused by target policy"
    elif isinstance(exc, TimeoutError) or (
        isinstance(exc, httpx.TimeoutException)
        and not isinstance(exc.__cause__, aiohttp.ClientConnectorError)
    ):
        message, actual = f"no response within {timeout_s:g} s", "timeout"
    elif isinstance(exc.__cause__, aiohttp.ClientConnectorError) or isinstance(exc, httpx.ConnectError):
        message, actual = f"could not connect: {exc.__cause__ or exc}", "connection error"
    else:
        message, actual = f"the request failed: {type(exc).__name__}: {exc}", type(exc).__name__
    failure = CheckFailure(REQUEST_ERROR, message, "a response", actual)
    return {"status": None, "elapsed_ms": None, "content_type": None, "failures": [failure.to_dict()]}


def _excerpt(response: Response) -> str:
    """The start of a textual body, for people reading a report; binary bodies by their size."""
    media = (response.content_type or "").split(";")[0].strip().lower()
    textual = media.startswith("text/") or "json" in media or "xml" in media or "yaml" in media
    if not textual and b"\x00" in response.body[:BODY_EXCERPT_BYTES]:
        return f"<{len(response.body)} bytes of {media or 'binary data'}>"
    return response.body[:BODY_EXCERPT_BYTES].decode("utf-8", errors="replace")


def _decoded(body: bytes, encoding: str | None) -> tuple[bytes, bool]:
    """Undo gzip/deflate (bodies are read raw so the cap counts wire bytes), at most the cap.

    The second value says the result was cut at the cap, so a decompression bomb costs
    no more memory than a large body.
    """
    if not encoding or not body or encoding.strip().lower() not in ("gzip", "x-gzip", "deflate"):
        return body, False
    for wbits in (16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS):  # gzip, zlib, raw deflate
        try:
            inflater = zlib.decompressobj(wbits)
            out = inflater.decompress(body, MAX_RESPONSE_BYTES)
        except zlib.error:
            continue
        return out, bool(inflater.unconsumed_tail)
    return body, False
