"""What the ``crucible`` commands share: consoles, the API client and a run's event stream.

The event follower exits nothing itself: it raises ``StreamRefused`` or ``StreamLost`` and each
command maps them to its own exit codes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from crucible.cli import credentials

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from crucible.core.config import Settings

T = TypeVar("T")

API = "/api/v1"
DEFAULT_TIMEOUT = httpx.Timeout(30)
#: The API pings every 15 s, so a stream silent for longer than this has dropped.
STREAM_TIMEOUT = httpx.Timeout(30, read=60)
#: Consecutive dropped streams before giving up on the API.
MAX_RESUMES = 10
TERMINAL_EVENTS = ("COMPLETE", "FAILED", "CANCELLED")


def console() -> Console:
    return Console(highlight=False)


def errors() -> Console:
    return Console(stderr=True, highlight=False)


def fail(message: str, code: int) -> NoReturn:
    errors().print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def detail(response: httpx.Response) -> str:
    """The API's explanation of an error response, on one line."""
    try:
        text = response.json().get("detail", response.text)
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(text, list):  # validation errors: one line each
        return "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in text)
    return str(text)


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=False))


def short_time(value: str | None) -> str:
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS``, without fractions or offset; None as ``""``."""
    return value.replace("T", " ")[:19] if value else ""


class Api:
    """One pooled client to the Crucible API for a whole command.

    Args:
        unreachable: the exit code when the API cannot be reached.
        transport: for tests, instead of the network.
    """

    def __init__(self, *, unreachable: int, transport: httpx.BaseTransport | None = None) -> None:
        from crucible.core.config import load_settings

        settings = load_settings()
        self.base = settings.effective_api_url
        self.unreachable = unreachable
        self.client = httpx.Client(base_url=self.base, timeout=DEFAULT_TIMEOUT, transport=transport)
        self._saved = None if credentials.env_token() else credentials.saved(self.base)
        saved = self._saved.access_token if self._saved else None
        token = credentials.env_token() or saved or credentials.dev_token(settings.home_dir)
        if token:
            self.client.headers["Authorization"] = f"Bearer {token}"

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The API's response, whatever its status; a login's expired access token is refreshed once."""
        try:
            response = self.client.request(method, path, **kwargs)
            if response.status_code == 401 and self._saved is not None and self._refresh():
                response = self.client.request(method, path, **kwargs)
            return response
        except httpx.TransportError as exc:
            fail(
                f"cannot reach the Crucible API at {self.base} ({exc}). "
                "Is `crucible dev` running? Set CRUCIBLE_API_URL to point elsewhere.",
                self.unreachable,
            )

    def _refresh(self) -> bool:
        """Swap the saved refresh token for a new pair; whether that worked."""
        assert self._saved is not None
        answer = self.client.post("/auth/refresh", json={"refresh_token": self._saved.refresh_token})
        if answer.status_code != 200:
            return False
        body = answer.json()
        self._saved = credentials.Saved(body["access_token"], body["refresh_token"], self._saved.email)
        credentials.save(self.base, self._saved)
        self.client.headers["Authorization"] = f"Bearer {self._saved.access_token}"
        return True


def sse_messages(response: httpx.Response) -> Iterator[dict[str, str]]:
    """Server-Sent Events of a streaming response, as dicts of their fields."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if "data" in fields:
                yield fields
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        fields[name] = f"{fields[name]}\n{value}" if name in fields else value


class StreamRefused(Exception):
    """The API refused the event stream (a 4xx, e.g. an unknown run): resuming would not help."""


class StreamLost(Exception):
    """The event stream dropped more than ``MAX_RESUMES`` times in a row."""


class _Dropped(Exception):
    """The event stream ended or failed before the run's terminal event."""


def follow_events(client: httpx.Client, run_id: str, *, notes: Console) -> Iterator[dict[str, Any]]:
    """A run's events up to its terminal one, over SSE.

    A dropped stream (or a 5xx) resumes after the last event seen, saying so on ``notes``;
    events seen already are skipped. Ends without a terminal event when the run has closed
    without one in its log.

    Raises:
        StreamRefused: the API refused the stream.
        StreamLost: the stream dropped more than ``MAX_RESUMES`` times without an event between.
    """
    last_seq = drops = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_seq:
            headers["Last-Event-ID"] = str(last_seq)
        try:
            with client.stream(
                "GET", f"{API}/runs/{run_id}/events/stream", headers=headers, timeout=STREAM_TIMEOUT
            ) as response:
                if response.is_error:
                    response.read()
                    reason = f"{response.status_code}: {detail(response)}"
                    if response.status_code < 500:
                        raise StreamRefused(reason)
                    raise _Dropped(reason)
                for message in sse_messages(response):
                    envelope = json.loads(message["data"])
                    if envelope["seq"] <= last_seq:
                        continue
                    last_seq, drops = envelope["seq"], 0
                    yield envelope
                    if envelope["type"] in TERMINAL_EVENTS:
                        return
            # A run Temporal ended without its terminal event in the log yet has no more to stream.
            run = client.get(f"{API}/runs/{run_id}")
            if run.is_success and run.json()["status"] != "RUNNING":
                return
            raise _Dropped("the stream ended early")
        except (httpx.TransportError, _Dropped) as exc:
            reason = str(exc) or type(exc).__name__
        drops += 1
        if drops > MAX_RESUMES:
            raise StreamLost(reason)
        notes.print(f"stream interrupted ({escape(reason)}); resuming after event {last_seq}…")
        time.sleep(min(drops, 5))


def in_database(use: Callable[[AsyncEngine], Awaitable[T]], settings: Settings | None = None) -> T:
    """What ``use`` returns, run against the database the settings name (operator commands
    write it directly, not through the API). The database's modules load only here."""
    from crucible.core.config import load_settings
    from crucible.core.db import create_engine

    resolved = settings or load_settings()

    async def run() -> T:
        engine = create_engine(resolved.effective_database_url)
        try:
            return await use(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())
