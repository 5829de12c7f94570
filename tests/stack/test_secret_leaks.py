"""A secret passed as a target header reaches the target, and is written nowhere else.

The whole stack runs as `crucible dev --demo` with every part's state under one folder: the
Temporal dev server's SQLite file, PostgreSQL's data directory (WAL included), and the logs.
The embedded Kafka broker keeps its topics in memory, so the topics are read over the wire
instead. Once the stack has stopped and flushed, every byte under the folder is searched for
the secret: as written, as UTF-16 and inside base64 text at every alignment. What could be
stored compressed or encrypted (PostgreSQL's TOASTed values, Temporal's sealed payloads,
Prometheus's labels) is also read back through each part's own interface and searched.

The QA run fetches its spec from the stack's demo target, and sends its requests to the same
demo app served in the test, which records the headers it receives.
"""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from google.protobuf.message import Message
from sqlalchemy import text
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from crucible.core.codec import PayloadEncryption
from crucible.core.db import create_engine
from crucible.core.events import TERMINAL_EVENTS
from crucible.core.secrets import SecretBox
from examples.demo_target.app import create_app as demo_app
from tests.support.dev import Child, dev_environment
from tests.support.qa import HeaderRecorder, serving

pytestmark = pytest.mark.timeout(240)

HEADER_NAMES = ("Authorization", "X-Api-Key")


def encoded_forms(secret: str) -> dict[str, bytes]:
    """``secret`` as it could sit in a file: raw, UTF-16, or inside longer base64 text.

    Inside a longer base64 string the secret's encoding depends on where it starts modulo
    three bytes; each form keeps only the characters that the secret alone decides.
    """
    raw = secret.encode()
    forms = {"raw": raw, "utf-16-le": secret.encode("utf-16-le"), "utf-16-be": secret.encode("utf-16-be")}
    for pad in range(3):
        first = 0 if pad == 0 else 4  # the first group also holds bytes before the secret
        last = (pad + len(raw)) // 3 * 4  # the last group may hold bytes after it
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            forms[f"{name}+{pad}"] = encode(b"\0" * pad + raw)[first:last]
    return forms


def found_in(data: bytes, needles: dict[str, bytes]) -> Iterator[tuple[str, int]]:
    """(name of the needle, offset) of every occurrence of each needle in ``data``."""
    for name, needle in needles.items():
        at = data.find(needle)
        while at != -1:
            yield name, at
            at = data.find(needle, at + 1)


def regular_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*")):
        try:
            if stat.S_ISREG(path.lstat().st_mode):
                files.append(path)
        except FileNotFoundError:
            continue
    return files


def part_of(path: Path) -> str:
    """Which part of the stack wrote a file under the state folder."""
    if path.name.startswith("temporal.db"):  # the SQLite file and its -wal and -shm
        return "temporal"
    return path.parts[0]


def read_stack_env(home: Path) -> dict[str, str]:
    lines = (home / "stack.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every Payload nested anywhere in a protobuf message (a history event's fields)."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        for item in values:
            if isinstance(item, Message):
                yield from payloads_in(item)


async def decrypted_history(address: str, namespace: str, run_id: str, key: str) -> bytes:
    """The run's Temporal history with every payload opened, as the codec server would show it."""
    client = await Client.connect(address, namespace=namespace)
    history = await client.get_workflow_handle(run_id).fetch_history()
    codec = PayloadEncryption(SecretBox(key))
    payloads = [payload for event in history.events for payload in payloads_in(event)]
    # Search attributes and the SDK's local activity markers stay plain; inputs and results are sealed.
    assert any(p.metadata.get("encoding") == b"binary/encrypted" for p in payloads)
    opened = await codec.decode(payloads)
    return json.dumps(history.to_json_dict()).encode() + b"\n" + b"\n".join(p.data for p in opened)


async def every_row(database_url: str) -> bytes:
    """Every row of every table of the stack's database, as PostgreSQL prints it (TOAST undone)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = (
                await conn.execute(
                    text(
                        "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
                        "FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                        "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
                    )
                )
            ).scalars()
            dump = []
            for table in tables:
                rows = (await conn.execute(text(f"SELECT t::text FROM {table} AS t"))).scalars()
                dump += [f"{table}: {row}" for row in rows]
    finally:
        await engine.dispose()
    assert len(dump) > 0
    return "\n".join(dump).encode()


async def every_record(
    bootstrap: str, run_id: str, timeout: float = 30
) -> tuple[bytes, list[dict[str, Any]]]:
    """Every record of every topic on the broker (keys, values, headers), and the run's envelopes."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    raw: list[bytes] = []
    envelopes: list[dict[str, Any]] = []
    try:
        topics = await consumer.topics()
        consumer.subscribe(topics=sorted(topics))
        async with asyncio.timeout(timeout):
            quiet = 0
            while quiet < 3 or not any(e["type"] in TERMINAL_EVENTS for e in envelopes):
                batches = await consumer.getmany(timeout_ms=300)
                quiet = 0 if batches else quiet + 1
                for records in batches.values():
                    for record in records:
                        raw += [record.key or b"", record.value or b""]
                        raw += [name.encode() + b"=" + value for name, value in record.headers]
                        if record.key == run_id.encode():
                            envelopes.append(json.loads(record.value or b"{}"))
    finally:
        await consumer.stop()
    return b"\n".join(raw), envelopes


async def every_label_value(prometheus: str) -> bytes:
    """Every value of every label Prometheus has stored, series names included."""
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as http:
        names = (await http.get("/api/v1/labels")).json()["data"]
        values = [(await http.get(f"/api/v1/label/{name}/values")).content for name in names]
    return b"\n".join(values)


async def test_a_header_secret_is_sent_to_the_target_and_written_nowhere(tmp_path: Path) -> None:
    secrets = {
        "bearer": "sentinel-" + uuid.uuid4().hex,
        "api key": "sentinel-" + uuid.uuid4().hex,
        "rejected": "sentinel-" + uuid.uuid4().hex,  # sent only in a request the API refuses
    }
    needles = {
        f"{which} ({form})": needle
        for which, secret in secrets.items()
        for form, needle in encoded_forms(secret).items()
    }

    def leaks(data: bytes) -> list[str]:
        return [f"{name} at offset {at}" for name, at in found_in(data, needles)]

    home = tmp_path / "state"
    env = dev_environment(home)
    api_url = f"http://127.0.0.1:{env['CRUCIBLE_API_PORT']}"
    demo = f"http://127.0.0.1:{env['CRUCIBLE_DEMO_PORT']}"
    # The demo target's own app, served here so that what it receives can be seen.
    recorder = HeaderRecorder(demo_app())
    dev = await Child.start("dev", "--demo", env=env)
    try:
        await dev.wait_for(r"^Crucible is up\.", timeout=90)
        stack = read_stack_env(home)
        bearer = {"Authorization": f"Bearer {(home / 'dev-token').read_text().strip()}"}
        async with (
            serving(recorder) as target,
            httpx.AsyncClient(base_url=api_url, headers=bearer, timeout=10) as api,
        ):
            refused = await api.post(
                "/api/v1/qa-runs",
                json={
                    "spec_url": f"{demo}/openapi.json",
                    "base_url": target.url,
                    "headers": {"X-Api-Key": secrets["rejected"] + "\n"},  # not sendable: refused
                },
            )
            assert refused.status_code == 422, refused.text
            assert not leaks(refused.content), refused.text

            started = await api.post(
                "/api/v1/qa-runs",
                json={
                    "spec_url": f"{demo}/openapi.json",
                    "base_url": target.url,
                    "headers": {
                        "Authorization": f"Bearer {secrets['bearer']}",
                        "X-Api-Key": secrets["api key"],
                    },
                },
            )
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            async with asyncio.timeout(90):
                while (run := (await api.get(f"/api/v1/runs/{run_id}")).json())["status"] == "RUNNING":
                    await asyncio.sleep(0.3)
            assert (run["status"], run["verdict"]) == ("COMPLETED", "FAILED"), run

            # Every request to the target carried both headers.
            assert len(recorder.seen) >= 8
            for seen in recorder.seen:
                assert seen.get("authorization") == f"Bearer {secrets['bearer']}"
                assert seen.get("x-api-key") == secrets["api key"]

            # What the API shows: the header names, never their values.
            events = (await api.get(f"/api/v1/runs/{run_id}/events", params={"limit": 1000})).json()
            assert events["done"] and events["items"][-1]["type"] == "COMPLETE"
            shown = {
                "run": (await api.get(f"/api/v1/runs/{run_id}")).content,
                "runs": (await api.get("/api/v1/runs", params={"limit": 500})).content,
                "events": json.dumps(events).encode(),
            }
            for fmt in ("json", "junit", "html"):
                report = await api.get(f"/api/v1/runs/{run_id}/report", params={"format": fmt})
                assert report.status_code == 200, report.text
                shown[f"{fmt} report"] = report.content
            for what, body in shown.items():
                assert not leaks(body), f"the {what} shows a secret: {leaks(body)}"
            assert sorted(json.loads(shown["json report"])["header_names"]) == sorted(HEADER_NAMES)
            assert all(name in events["items"][0]["data"]["header_names"] for name in HEADER_NAMES)
            assert all(run_id.encode() in shown[f"{fmt} report"] for fmt in ("json", "junit", "html"))

        # Kafka: every topic, read from its start, holds the run's events and no secret.
        records, envelopes = await every_record(stack["KAFKA_BOOTSTRAP_SERVERS"], run_id)
        assert stack["CRUCIBLE_KAFKA_EVENTS_TOPIC"] == "crucible.events"
        assert {e["seq"] for e in envelopes} == {e["seq"] for e in events["items"]}
        assert not leaks(records), f"Kafka holds a secret: {leaks(records)}"

        # PostgreSQL's rows, read through SQL so that compressed (TOASTed) values are searched too.
        rows = await every_row(stack["DATABASE_URL"])
        assert run_id.encode() in rows and b"X-Api-Key" in rows
        assert not leaks(rows), f"PostgreSQL rows hold a secret: {leaks(rows)}"

        # Temporal's history, payloads decrypted: the workflow got a reference, not the headers.
        history = await decrypted_history(
            stack["TEMPORAL_ADDRESS"], stack["TEMPORAL_NAMESPACE"], run_id, stack["CRUCIBLE_SECRETS_KEY"]
        )
        assert b"headers_secret" in history and b"X-Api-Key" in history and target.url.encode() in history
        assert not leaks(history), f"the decrypted Temporal history holds a secret: {leaks(history)}"

        # Prometheus compresses its WAL; its label values, read through its API, are searched here.
        # (Once it has scraped the API: on a busy machine its first scrape may come late.)
        prometheus = stack["CRUCIBLE_PROMETHEUS_URL"]
        async with asyncio.timeout(60):
            while b"crucible-api" not in (labels := await every_label_value(prometheus)):
                await asyncio.sleep(1)
        assert b"crucible-api" in labels
        assert not leaks(labels), f"a Prometheus label holds a secret: {leaks(labels)}"

        assert await dev.terminate(timeout=30) == 0
    finally:
        await dev.kill()

    # Everything the stack wrote, flushed by its clean stop: Temporal's SQLite file (and any
    # -wal/-shm), PostgreSQL's data directory and WAL, the logs, the stack's own files.
    files = regular_files(home)
    found: list[str] = []
    mentions_run: set[str] = set()
    for path in files:
        data = path.read_bytes()
        found += [f"{path.relative_to(home)}: {leak}" for leak in leaks(data)]
        if run_id.encode() in data:
            mentions_run.add(part_of(path.relative_to(home)))
    assert not found, "a secret was written to disk:\n" + "\n".join(found)
    assert not leaks(dev.output.encode()), f"`crucible dev` printed a secret: {leaks(dev.output.encode())}"

    # The search read real data: the run is on disk in each part.
    assert {"temporal", "postgres", "logs"} <= mentions_run, mentions_run
