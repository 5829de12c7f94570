"""The control API in-process, driving real traffic through a proxy to an echo server."""

from __future__ import annotations

import httpx
import pytest

from tests.chaos_proxy.support import round_trip

pytestmark = pytest.mark.timeout(15)

LATENCY = {"type": "latency", "ms": 200}


async def _create(control: httpx.AsyncClient, echo_port: int, name: str = "echo") -> str:
    response = await control.post(
        "/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo_port}"}
    )
    assert response.status_code == 201, response.text
    listen: str = response.json()["listen"]
    assert not listen.endswith(":0")
    return listen


async def test_health(control: httpx.AsyncClient) -> None:
    response = await control.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_a_proxy_through_its_life(control: httpx.AsyncClient, echo_port: int) -> None:
    listen = await _create(control, echo_port)
    data, clean = await round_trip(listen)
    assert data == b"ping" and clean < 0.15

    put = await control.put("/proxies/echo/faults/slow", json=LATENCY)
    assert put.status_code == 200, put.text
    assert (await control.put("/proxies/echo/faults/slow", json=LATENCY)).status_code == 200
    data, slow = await round_trip(listen)
    assert data == b"ping" and slow >= 0.19

    proxy = (await control.get("/proxies/echo")).json()
    assert proxy["faults"] == {
        "slow": {"type": "latency", "ms": 200, "jitter_ms": 0, "direction": "downstream", "toxicity": 1.0}
    }
    assert proxy["stats"]["connections_total"] == 2
    assert proxy["stats"]["fault_hits"]["slow"] >= 1

    assert (await control.delete("/proxies/echo/faults/slow")).status_code == 204
    assert (await control.delete("/proxies/echo/faults/slow")).status_code == 204
    _, after = await round_trip(listen)
    assert after < 0.15

    await control.put("/proxies/echo/faults/a", json=LATENCY)
    await control.put("/proxies/echo/faults/b", json={"type": "bandwidth", "kbps": 100})
    assert (await control.delete("/proxies/echo/faults")).status_code == 204
    assert (await control.get("/proxies/echo")).json()["faults"] == {}
    _, cleared = await round_trip(listen)
    assert cleared < 0.15

    assert (await control.delete("/proxies/echo")).status_code == 204
    assert (await control.get("/proxies/echo")).status_code == 404
    with pytest.raises(OSError):
        await round_trip(listen)
    assert (await control.delete("/proxies/echo")).status_code == 204


async def test_creating_again_is_harmless_and_listed(control: httpx.AsyncClient, echo_port: int) -> None:
    listen = await _create(control, echo_port)
    again = await control.post("/proxies", json={"name": "echo", "upstream": f"127.0.0.1:{echo_port}"})
    assert again.status_code == 200
    assert again.json()["listen"] == listen
    other = await control.post("/proxies", json={"name": "echo", "upstream": "127.0.0.1:1"})
    assert other.status_code == 409
    listed = (await control.get("/proxies")).json()["proxies"]
    assert [p["name"] for p in listed] == ["echo"]


@pytest.mark.parametrize(
    ("fault", "field"),
    [
        ({"type": "latency", "ms": -1}, "ms"),
        ({"type": "earthquake"}, "type"),
        ({"type": "latency", "ms": 1, "colour": "red"}, "colour"),
        ({"type": "latency", "ms": 1, "toxicity": 2}, "toxicity"),
    ],
)
async def test_a_bad_fault_is_422_naming_the_field(
    control: httpx.AsyncClient, echo_port: int, fault: dict[str, object], field: str
) -> None:
    await _create(control, echo_port)
    response = await control.put("/proxies/echo/faults/bad", json=fault)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", field]
    assert (await control.get("/proxies/echo")).json()["faults"] == {}


async def test_bad_addresses_and_missing_proxies(control: httpx.AsyncClient) -> None:
    bad = await control.post("/proxies", json={"name": "x", "upstream": "nowhere"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "upstream"]
    assert (await control.put("/proxies/missing/faults/f", json=LATENCY)).status_code == 404
    assert (await control.delete("/proxies/missing/faults")).status_code == 404
