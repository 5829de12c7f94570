"""Whatever a target does on the wire, it is one scenario's result, never a broken batch."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import pytest

from crucible.activities.target import MAX_RESPONSE_BYTES, REDACTED, Target
from crucible.core.http import target_client
from crucible.core.qa.models import ExecuteOperationsInput
from crucible.core.qa.scenarios import ACCEPT, Scenario
from crucible.core.qa.spec import Spec
from crucible.core.targets import TargetClient, TargetPolicy
from crucible.stack.services import free_port
from tests.support.targets import simple_spec

SECRET = "Bearer very-secret-token"
JSON = b"content-type: application/json\r\n"


def _answer(path: str, headers: dict[str, str]) -> bytes:
    if path == "/malformed":
        return b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"
    if path.startswith("/wire"):
        body = json.dumps({"target": path, "x-colors": headers.get("x-colors", "")}).encode()
    elif path == "/headers":
        body = json.dumps(headers).encode()
    elif path == "/echo":
        body = json.dumps({"authorization": headers.get("authorization", "")}).encode()
    elif path == "/cookie":
        body = json.dumps({"cookie": headers.get("cookie", "")}).encode()
        return (
            b"HTTP/1.1 200 OK\r\n"
            + JSON
            + b"set-cookie: session=ADMIN\r\n"
            + b"content-length: %d\r\n\r\n" % len(body)
            + body
        )
    elif path == "/bomb":
        body = gzip.compress(b"{" + b" " * (20 * MAX_RESPONSE_BYTES))
        return (
            b"HTTP/1.1 200 OK\r\n"
            + JSON
            + b"content-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(body)
            + body
        )
    else:
        body = b"{}"
    return b"HTTP/1.1 200 OK\r\n" + JSON + b"content-length: %d\r\n\r\n" % len(body) + body


@pytest.fixture
async def target_url() -> AsyncIterator[str]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                lines = head.split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {
                    k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                if path == "/stall":
                    writer.write(b"HTTP/1.1 200 OK\r\n" + JSON + b'content-length: 100\r\n\r\n{"a"')
                    await writer.drain()
                    await asyncio.sleep(30)
                writer.write(_answer(path, headers))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    server.close()


async def _run(
    url: str,
    path: str,
    client: TargetClient,
    *,
    headers: dict[str, str] | None = None,
    scenario: Scenario | None = None,
) -> dict:
    spec = Spec(simple_spec([path]))
    request = ExecuteOperationsInput(run_id="qa-test", operations=[], base_url=url, request_timeout_s=1)
    target = Target(client, spec, request, headers or {})
    return await target.run(spec.operations[0], scenario or Scenario("positive", ACCEPT))


async def test_the_wire_never_breaks_a_batch(target_url: str) -> None:
    client = target_client()
    try:
        malformed = await _run(target_url, "/malformed", client)
        assert [f["check"] for f in malformed["failures"]] == ["request_error"]

        stalled = await _run(target_url, "/stall", client)  # the body never ends: judged on what came
        assert stalled["status"] == 200 and stalled["truncated"]

        bomb = await _run(target_url, "/bomb", client)  # decompressed up to the cap, no further
        assert bomb["truncated"] and bomb["status"] == 200

        refused = await _run(f"http://127.0.0.1:{free_port()}", "/x", client)
        assert "could not connect" in refused["failures"][0]["message"]

        echoed = await _run(target_url, "/echo", client, headers={"authorization": SECRET})
        assert SECRET not in str(echoed) and REDACTED in echoed["body_excerpt"]

        first = await _run(target_url, "/cookie", client)
        second = await _run(target_url, "/cookie", client)
        assert '"cookie": ""' in first["body_excerpt"] and '"cookie": ""' in second["body_excerpt"]
    finally:
        await client.aclose()


async def test_a_request_has_the_clients_defaults_the_scenarios_headers_and_the_users_over_them(
    target_url: str,
) -> None:
    scenario = Scenario(
        "positive",
        ACCEPT,
        headers={"X-Trace": "t-1", "x-api-key": "from-the-scenario"},
        cookies={"session": "s-1", "prefs": ["a", "b"]},
    )
    async with target_client() as client:
        sent = await _run(target_url, "/headers", client, headers={"X-Api-Key": "key-1"}, scenario=scenario)
        plain = await _run(target_url, "/headers", client, headers={"X-Api-Key": "key-1"})
        cookie = await _run(target_url, "/headers", client, headers={"Cookie": "a=1234"}, scenario=scenario)
    wire = json.loads(sent["body_excerpt"])
    assert wire["user-agent"] == "crucible-qa" and wire["accept-encoding"] == "gzip, deflate"
    assert wire["x-trace"] == "t-1" and wire["cookie"] == "session=s-1; prefs=a,b"
    assert wire["x-api-key"] == REDACTED  # the user's value went, not the scenario's
    assert json.loads(plain["body_excerpt"])["x-api-key"] == REDACTED
    assert "cookie" not in json.loads(plain["body_excerpt"])
    assert json.loads(cookie["body_excerpt"])["cookie"] == REDACTED  # the user's own cookie wins


async def test_a_target_the_policy_refuses_is_the_scenarios_request_error(target_url: str) -> None:
    async with target_client(policy=TargetPolicy.build(mode="production")) as guarded:
        refused = await _run(target_url, "/x", guarded)
    [failure] = refused["failures"]
    assert failure["check"] == "request_error" and failure["actual"] == "refused by target policy"
    assert failure["message"].startswith(f"target refused by policy: {target_url}: 127.0.0.1 is a loopback")
    assert failure["message"].endswith("(rule: not-allowed)") and refused["status"] is None


async def test_parameters_are_written_in_the_style_the_spec_declares(target_url: str) -> None:
    """Swagger 2.0 arrays are comma-separated unless ``collectionFormat`` says otherwise;
    OpenAPI 3 follows ``style`` and ``explode`` (a matrix path, a spaceDelimited query)."""
    swagger = {
        "swagger": "2.0",
        "info": {"title": "wire", "version": "1"},
        "paths": {
            "/wire/{ids}": {
                "get": {
                    "parameters": [
                        {
                            "name": "ids",
                            "in": "path",
                            "required": True,
                            "type": "array",
                            "items": {"type": "integer"},
                        },
                        {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}},
                        {
                            "name": "ids",
                            "in": "query",
                            "type": "array",
                            "items": {"type": "integer"},
                            "collectionFormat": "multi",
                        },
                        {"name": "x-colors", "in": "header", "type": "array", "items": {"type": "string"}},
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    openapi = simple_spec(["/wire{ids}"], version="3.0.3")
    openapi["paths"]["/wire{ids}"]["get"]["parameters"] = [
        {"name": "ids", "in": "path", "required": True, "style": "matrix", "schema": {"type": "array"}},
        {
            "name": "tags",
            "in": "query",
            "style": "spaceDelimited",
            "explode": False,
            "schema": {"type": "array"},
        },
    ]
    scenario = Scenario(
        "positive",
        ACCEPT,
        path_params={"ids": [1, 2]},
        query={"tags": ["a", "b"], "ids": [3, 4]},
        headers={"x-colors": ["red", "blue"]},
    )
    async with target_client() as client:
        sent = []
        for doc in (swagger, openapi):
            spec = Spec(doc)
            request = ExecuteOperationsInput(run_id="qa-test", operations=[], base_url=target_url)
            result = await Target(client, spec, request, {}).run(spec.operations[0], scenario)
            sent.append(json.loads(result["body_excerpt"]))
    assert sent[0] == {"target": "/wire/1,2?tags=a%2Cb&ids=3&ids=4", "x-colors": "red,blue"}
    assert sent[1] == {"target": "/wire;ids=1,2?tags=a+b&ids=3&ids=4", "x-colors": "red,blue"}
