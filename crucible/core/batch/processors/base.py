"""What every batch processor provides, and the helpers they share for options and counts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from crucible.core.batch.records import Chunk

#: Where a wrong option is inside the options object, FastAPI's ``loc`` style, and why.
OptionError = tuple[tuple[str | int, ...], str]

_Options = TypeVar("_Options", bound=BaseModel)


@dataclass(frozen=True)
class ChunkContext:
    """What a processor knows of the job a chunk belongs to."""

    #: Stable across retries and resumes of the job, so it can key idempotent side effects.
    job_id: str


@dataclass
class ChunkOutput:
    """A processed chunk: its output records and its share of the job's counts."""

    #: Output records in row order, one JSON line each.
    lines: list[dict[str, Any]]
    #: Small, JSON-serialisable partial counts that :meth:`Processor.merge` combines.
    aggregates: dict[str, Any]


class Processor(Protocol):
    """Processes a batch job's records, a chunk at a time.

    Chunks may be processed in any grouping and on any worker; the job's output is the
    chunks' lines in order, and its summary comes from the merged aggregates. A processor
    that needs global statistics computes them in :meth:`profile`, one pass over the whole
    input before any chunk, and every chunk is then processed with the same profile.
    """

    name: str
    needs_profile: bool

    def profile(self, records: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        """Global statistics of the input: compact and JSON-serialisable. ``{}`` if not needed."""
        ...

    async def process(self, chunk: Chunk, profile: dict[str, Any], context: ChunkContext) -> ChunkOutput:
        """The chunk's output lines and aggregates. A record that cannot be processed raises
        :class:`~crucible.core.batch.records.MalformedRecordError`."""
        ...

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """Combine two aggregates; associative, with ``{}`` as the identity."""
        ...

    def summary(self, aggregates: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
        """The job's summary from all chunks' merged aggregates."""
        ...


class InvalidOptionsError(ValueError):
    """A processor's options are wrong; ``errors`` lists where and why."""

    def __init__(self, processor: str, errors: list[OptionError]) -> None:
        details = "; ".join(f"{'.'.join(map(str, loc)) or 'options'}: {msg}" for loc, msg in errors)
        super().__init__(f"{processor}: {details}")
        self.errors = errors


def option_error(kind: str, message: str) -> PydanticCustomError:
    """An error for an options model's validator to raise, with ``message`` as it is."""
    # The message goes in through the context, so braces in it are not a format string.
    return PydanticCustomError(kind, "{message}", {"message": message})


def option_errors(model: type[BaseModel], options: Any) -> list[OptionError]:
    """What ``model`` finds wrong with ``options``, located; empty if nothing."""
    try:
        model.model_validate(options)
    except ValidationError as exc:
        return _located(exc)
    return []


def parse_options(processor: str, model: type[_Options], options: Any) -> _Options:
    """The options as ``model``.

    Raises:
        InvalidOptionsError: they do not fit it.
    """
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise InvalidOptionsError(processor, _located(exc)) from None


def _located(exc: ValidationError) -> list[OptionError]:
    return [(tuple(error["loc"]), error["msg"]) for error in exc.errors()]


def add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The sum of two nested count dictionaries, key by key; the key order of ``a``, then ``b``."""
    total = dict(a)
    for key, value in b.items():
        if key not in total:
            total[key] = value
        elif isinstance(value, dict):
            total[key] = add_counts(total[key], value)
        else:
            total[key] += value
    return total
