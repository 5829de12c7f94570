"""With CRUCIBLE_BATCH_ROOTS set, batch jobs read and write inside those folders only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crucible.api.app import create_app
from crucible.core.config import Settings
from tests.support.servers import ApiServer


@pytest.fixture
async def fenced(
    settings: Settings, tmp_path: Path, auth_headers: dict[str, str]
) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    root = tmp_path / "data"
    root.mkdir()
    server = ApiServer(create_app(settings.model_copy(update={"batch_roots": f"{root}, /nowhere"})))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=auth_headers, timeout=30) as api:
            yield api, root
    finally:
        await server.stop()


def job(input: str, output: str) -> dict[str, Any]:
    return {"input": input, "processor": "anomaly-detection", "output": output}


async def test_paths_outside_the_roots_are_403(
    fenced: tuple[httpx.AsyncClient, Path], tmp_path: Path
) -> None:
    api, root = fenced
    (root / "escape").symlink_to("/etc")
    cases = {
        "input": job("/etc/passwd.csv", str(root / "out.jsonl")),
        "output": job(str(root / "in.csv"), str(tmp_path / "out.jsonl")),
    }
    for field, body in cases.items():
        response = await api.post("/api/v1/batch-jobs", json=body)
        # Well formed, so not a 422: the server's folder rules refuse it (the field is named).
        assert response.status_code == 403, response.text
        detail = response.json()["detail"]
        assert detail.startswith(f"{field}: ") and "outside the folders" in detail
    linked = await api.post(
        "/api/v1/batch-jobs", json=job(str(root / "escape" / "x.csv"), str(root / "o.jsonl"))
    )
    assert linked.status_code == 403, "a symbolic link does not lead out of the roots"
    steps = [{"type": "batch", "job": job("/etc/x.csv", str(root / "o.jsonl"))}]
    pipeline = await api.post("/api/v1/pipelines", json={"name": "p", "steps": steps})
    assert pipeline.status_code == 403
    assert pipeline.json()["detail"].startswith("steps[0].job.input: ")


async def test_an_input_url_is_not_a_path(fenced: tuple[httpx.AsyncClient, Path]) -> None:
    api, root = fenced
    dotted = await api.post("/api/v1/batch-jobs", json=job("/nowhere/../etc/x.csv", str(root / "o.jsonl")))
    assert dotted.status_code == 403 and dotted.json()["detail"].startswith("input: ")
    response = await api.post(
        "/api/v1/batch-jobs", json=job("https://data.example.com/rows.csv", "/etc/o.jsonl")
    )
    assert response.status_code == 403 and response.json()["detail"].startswith("output: ")


async def test_crucible_own_folders_are_never_a_jobs(api: httpx.AsyncClient, settings: Settings) -> None:
    key = settings.home_dir / "secrets.key"
    body = {**job(str(key), "/tmp/o.jsonl"), "format": "csv"}
    response = await api.post("/api/v1/batch-jobs", json=body)
    assert response.status_code == 403, "the secrets key cannot be read as a CSV header"
    assert "Crucible's own folders" in response.json()["detail"]
    part = settings.effective_batch_work_dir / "batch-x" / "parts" / "00000000.jsonl"
    overwrite = await api.post("/api/v1/batch-jobs", json=job("/tmp/rows.csv", str(part)))
    assert overwrite.status_code == 403 and overwrite.json()["detail"].startswith("output: ")


async def test_secrets_without_a_key_are_503_naming_them(
    settings: Settings, tmp_path: Path, auth_headers: dict[str, str]
) -> None:
    server = ApiServer(create_app(settings.model_copy(update={"secrets_key": None})))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=auth_headers, timeout=30) as api:
            body = {
                **job(str(tmp_path / "rows.jsonl"), str(tmp_path / "out.jsonl")),
                "processor": "http",
                "options": {"url": "http://127.0.0.1:9/x"},
                "headers": {"Authorization": "Bearer x"},
            }
            response = await api.post("/api/v1/batch-jobs", json=body)
    finally:
        await server.stop()
    assert response.status_code == 503, response.text
    assert "secrets" in response.text
