"""``schema-validation``: check every record against a JSON Schema; output the invalid ones."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crucible.core.batch.processors.base import (
    ChunkContext,
    ChunkOutput,
    add_counts,
    option_error,
    parse_options,
)
from crucible.core.batch.records import Chunk

NAME = "schema-validation"
#: Errors listed per invalid record; the count of the rest is not kept.
MAX_ERRORS_PER_RECORD = 20
#: Distinct error paths counted in the aggregates; the others are counted under OTHER_PATHS.
MAX_ERROR_PATHS = 100
OTHER_PATHS = "…other"

_Converter = Callable[[str], Any]


class SchemaOptions(BaseModel):
    """Options of ``schema-validation``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    json_schema: dict[str, Any] = Field(alias="schema", description="A JSON Schema; draft from $schema.")
    coerce: bool | None = Field(
        None,
        description="Read numbers and booleans out of strings where the schema asks for them, and take "
        "an empty string as absent. Unset: for CSV input, whose values are all strings.",
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        validator_class = _validator_class(schema)
        try:
            validator_class.check_schema(schema)
        except SchemaError as exc:
            reason = f"not a valid JSON Schema: {exc.message} (at {exc.json_path})"
            raise option_error("invalid_schema", reason) from None
        return schema


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator of the draft ``$schema`` names; 2020-12 when it names none."""
    if "$schema" not in schema:
        return Draft202012Validator
    try:
        known = isinstance(schema["$schema"], str) and validator_for(schema, default=None) is not None
    except ValueError:  # not even a URI
        known = False
    if not known:
        raise option_error("unknown_draft", f"unknown $schema {schema['$schema']!r}")
    return validator_for(schema)


class SchemaValidator:
    """Outputs ``{"row", "id", "errors": [{"path", "message"}]}`` for each invalid record.

    Formats are checked too (``"format": "email"``): a batch job validating data wants
    them enforced, although the 2020-12 draft makes them annotations by default.
    """

    name = NAME
    needs_profile = False

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = parse_options(NAME, SchemaOptions, options)
        schema = self.options.json_schema
        validator_class = _validator_class(schema)
        self.validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
        self.converters = _converters(schema)

    def profile(self, records: Iterable[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
        return {}

    async def process(self, chunk: Chunk, profile: dict[str, Any], context: ChunkContext) -> ChunkOutput:
        return await asyncio.to_thread(self._process, chunk)

    def _process(self, chunk: Chunk) -> ChunkOutput:
        coerce = self.options.coerce
        if coerce is None:
            coerce = chunk.format != "jsonl"
        lines = []
        by_path: dict[str, int] = {}
        for row, record in enumerate(chunk.records, chunk.first_row):
            instance = self._coerced(record) if coerce else record
            errors = sorted(
                (_json_path(e.absolute_path), e.message) for e in self.validator.iter_errors(instance)
            )
            if not errors:
                continue
            for path, _ in errors:
                by_path[path] = by_path.get(path, 0) + 1
            lines.append(
                {
                    "row": row,
                    "id": record.get("id"),
                    "errors": [{"path": p, "message": m} for p, m in errors[:MAX_ERRORS_PER_RECORD]],
                }
            )
        records = len(chunk.records)
        aggregates = {
            "records": records,
            "valid": records - len(lines),
            "invalid": len(lines),
            "errors_by_path": _capped(by_path),
        }
        return ChunkOutput(lines, aggregates)

    def _coerced(self, record: dict[str, Any]) -> dict[str, Any]:
        coerced = {}
        for key, value in record.items():
            if type(value) is str:
                if value == "":  # an empty CSV field is a missing value
                    continue
                if key in self.converters:
                    value = self.converters[key](value)
            coerced[key] = value
        return coerced

    def merge(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        total = add_counts(a, b)
        if "errors_by_path" in total:
            total["errors_by_path"] = _capped(total["errors_by_path"])
        return total

    def summary(self, aggregates: dict[str, Any], profile: dict[str, Any]) -> dict[str, Any]:
        empty: dict[str, Any] = {"records": 0, "valid": 0, "invalid": 0, "errors_by_path": {}}
        return add_counts(empty, aggregates)


def _capped(by_path: dict[str, int]) -> dict[str, int]:
    """At most :data:`MAX_ERROR_PATHS` paths, the alphabetically first, and the rest counted together.

    Alphabetical rather than the most frequent: a path kept by one merge is then kept by
    every grouping of merges, which keeps :meth:`SchemaValidator.merge` associative.
    """
    paths = sorted(p for p in by_path if p != OTHER_PATHS)
    if len(paths) <= MAX_ERROR_PATHS:
        return by_path
    kept = {p: by_path[p] for p in paths[:MAX_ERROR_PATHS]}
    kept[OTHER_PATHS] = sum(by_path.values()) - sum(kept.values())
    return kept


def _json_path(path: Iterable[str | int]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _converters(schema: dict[str, Any]) -> dict[str, _Converter]:
    """For each top-level property whose declared type is a number or a boolean and not a
    string: how to read that from a string. A string that does not read stays a string, for
    the validator to report."""
    converters = {}
    properties = schema.get("properties")
    for name, subschema in (properties if isinstance(properties, dict) else {}).items():
        declared = subschema.get("type") if isinstance(subschema, dict) else None
        types = [declared] if isinstance(declared, str) else declared
        if not isinstance(types, list) or "string" in types:
            continue
        readers = [_READERS[t] for t in types if t in _READERS]
        if readers:
            converters[name] = _first_reading(readers)
    return converters


def _first_reading(readers: list[Callable[[str], Any]]) -> _Converter:
    def convert(text: str) -> Any:
        for read in readers:
            value = read(text)
            if value is not None:
                return value
        return text

    return convert


def _read_integer(text: str) -> int | None:
    number = _read_number(text)
    if isinstance(number, float):  # "42.0" is an integer to JSON Schema
        return int(number) if number.is_integer() else None
    return number


def _read_number(text: str) -> int | float | None:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _read_boolean(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.strip().lower())


_READERS: dict[str, Callable[[str], Any]] = {
    "integer": _read_integer,
    "number": _read_number,
    "boolean": _read_boolean,
}
