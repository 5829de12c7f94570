"""Requests the API cannot take still get answers a client can act on: never a 500."""

from __future__ import annotations

import httpx

from tests.support.bodies import QUICK_QA


async def test_text_with_nul_characters_is_422_not_a_database_error(api: httpx.AsyncClient) -> None:
    response = await api.post("/api/v1/tokens", json={"name": "ci\u0000token"})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"] == "text may not hold NUL (\\u0000) characters"
    login = await api.post("/auth/login", json={"email": "a\u0000b@example.com", "password": "x" * 12})
    assert login.status_code == 422, login.text


async def test_a_body_that_is_not_utf8_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/tokens", content=b'{"name": "\xff"}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body"]


async def test_a_method_a_path_does_not_take_names_every_one_it_does(api: httpx.AsyncClient) -> None:
    # Two routes share the path: the answer names the methods of both.
    response = await api.request("PUT", "/api/v1/tokens")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    one = await api.request("PATCH", "/api/v1/pipelines/pl-x")
    assert one.status_code == 405 and one.headers["allow"] == "DELETE, GET"


async def test_an_event_position_past_any_run_is_422_not_a_database_error(api: httpx.AsyncClient) -> None:
    run_id = (await api.post("/api/v1/qa-runs", json=QUICK_QA)).json()["run_id"]
    response = await api.get(f"/api/v1/runs/{run_id}/events", params={"after": 2**40})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "after"]
