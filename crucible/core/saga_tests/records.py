"""Reading one Kafka message the way a saga test does: its correlation id, type and time."""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crucible.core.events import format_time
from crucible.core.saga_tests.models import EventSummary
from crucible.core.sagas.jsonpath import JsonPath, PathNotFoundError

#: Keys longer than this are cut in summaries.
MAX_KEY_CHARS = 200


@dataclass(frozen=True)
class EventReader:
    """Finds a message's correlation id, type, time and id by JSONPaths into its JSON value."""

    correlation: JsonPath
    type: JsonPath
    time: JsonPath | None = None
    event_id: JsonPath | None = None

    @classmethod
    def of(
        cls, correlation_path: str, type_path: str, time_path: str | None, event_id_path: str | None = None
    ) -> EventReader:
        return cls(
            JsonPath.parse(correlation_path),
            JsonPath.parse(type_path),
            JsonPath.parse(time_path) if time_path else None,
            JsonPath.parse(event_id_path) if event_id_path else None,
        )


class NotJson(ValueError):
    """The message's value is not a JSON document."""


class Untyped(LookupError):
    """The message carries the correlation id but has no type."""


def _find(path: JsonPath, document: Any) -> Any:
    try:
        return path.find(document)
    except PathNotFoundError:
        return None


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _own_time(reader: EventReader, document: Any) -> datetime | None:
    value = _find(reader.time, document) if reader.time is not None else None
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def summarize(
    reader: EventReader,
    correlation_id: str,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
) -> EventSummary | None:
    """The message's summary if it carries ``correlation_id``, else None.

    Raises :class:`NotJson` for a value that is not JSON and :class:`Untyped` for a message
    of this correlation id without a type (both are counted, not collected).
    """
    try:
        document = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        raise NotJson(f"{topic}/{partition}@{offset}") from None
    if _as_text(_find(reader.correlation, document)) != correlation_id:
        return None
    event_type = _as_text(_find(reader.type, document))
    if not event_type:
        raise Untyped(f"{topic}/{partition}@{offset}")
    at = _own_time(reader, document)
    if at is None and timestamp_ms >= 0:  # Kafka says -1 for a message without a timestamp
        at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    shown_key = key.decode(errors="replace")[:MAX_KEY_CHARS] if key is not None else None
    event_id = _as_text(_find(reader.event_id, document)) if reader.event_id is not None else None
    return EventSummary(
        type=event_type,
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=format_time(at) if at else None,
        time_s=at.timestamp() if at else None,
        key=shown_key,
        digest=hashlib.sha256(value or b"").hexdigest()[:12],
        event_id=event_id[:MAX_KEY_CHARS] if event_id else None,
    )


def _timed(events: list[EventSummary]) -> list[tuple[float, EventSummary]]:
    """One partition's events with the time each is merged at: its own, or, when it has none,
    the time of the nearest event before it in the partition (else after it)."""
    known = [e.time_s for e in events if e.time_s is not None]
    last = known[0] if known else 0.0
    timed = []
    for event in events:
        last = event.time_s if event.time_s is not None else last
        timed.append((last, event))
    return timed


def ordered(events: Sequence[EventSummary], topics: Sequence[str]) -> list[EventSummary]:
    """Within a partition by offset, as Kafka ordered them; partitions merged by time, and events
    of one instant by topic (as listed), partition and offset.

    A partition's order is the producer's own, and it wins over clocks: an event is never placed
    before one that precedes it in its partition, whatever their times say.
    """
    rank = {topic: i for i, topic in enumerate(topics)}
    partitions: dict[tuple[str, int], list[EventSummary]] = {}
    for event in events:
        partitions.setdefault((event.topic, event.partition), []).append(event)
    runs = [_timed(sorted(run, key=lambda e: e.offset)) for run in partitions.values()]
    merged = heapq.merge(
        *runs,
        key=lambda timed: (
            timed[0],
            rank.get(timed[1].topic, len(rank)),
            timed[1].partition,
            timed[1].offset,
        ),
    )
    return [event for _, event in merged]
