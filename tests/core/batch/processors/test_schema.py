"""Schema validation: reasons per record, CSV strings read as the schema's types, capped counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crucible.core.batch.plain import run_plain
from crucible.core.batch.processors import ChunkContext, build_processor, validate_options
from crucible.core.batch.processors.schema import MAX_ERROR_PATHS, OTHER_PATHS, SchemaValidator
from crucible.core.batch.records import Chunk
from tests.support.batch_data import PERSON_SCHEMA, process_in_chunks, write_sample_jsonl


def validator(schema: dict[str, Any], **options: Any) -> SchemaValidator:
    processor = build_processor("schema-validation", {"schema": schema, **options})
    assert isinstance(processor, SchemaValidator)
    return processor


async def test_jsonl_records_are_reported_with_their_reasons(tmp_path: Path) -> None:
    path = tmp_path / "people.jsonl"
    invalid = write_sample_jsonl(path, 60)
    plain = run_plain(str(path), "schema-validation", {"schema": PERSON_SCHEMA})
    assert [line["row"] for line in plain.lines] == invalid == [10, 20, 30, 40, 50, 60]
    by_row = {line["row"]: line for line in plain.lines}
    [negative_age] = by_row[30]["errors"]
    assert (by_row[30]["id"], negative_age["path"]) == (30, "$.age")
    assert negative_age["message"].endswith("is less than the minimum of 0")
    [age_as_text] = by_row[10]["errors"]
    assert age_as_text["path"] == "$.age"
    assert age_as_text["message"].endswith("is not of type 'integer'")  # JSON Lines strings stay strings
    assert by_row[20]["errors"] == [{"path": "$", "message": "'email' is a required property"}]
    assert plain.summary == {
        "records": 60,
        "valid": 54,
        "invalid": 6,
        "errors_by_path": {"$.age": 4, "$": 2},
    }
    processor = validator(PERSON_SCHEMA)
    for size in (1, 7):
        lines, aggregates = await process_in_chunks(processor, path, size=size, profile={})
        assert lines == plain.lines
        assert processor.summary(aggregates, {}) == plain.summary


async def test_csv_strings_are_read_as_the_schemas_types(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "required": ["id", "n", "ok"],
        "properties": {
            "id": {"type": "string"},
            "n": {"type": "integer", "maximum": 10},
            "x": {"type": ["number", "null"]},
            "ok": {"type": "boolean"},
            "code": {"type": ["string", "integer"], "pattern": "^[A-Z]+$"},
        },
    }
    path = tmp_path / "rows.csv"
    path.write_text(
        "id,n,x,ok,code\n"
        "a,3,1.5,true,AB\n"  # valid
        "b,12,,FALSE,CD\n"  # n too large; an empty x is absent
        "c,4.0,x,yes,12\n"  # x and ok do not read as their types; code is a string, not coerced
        "d,,2,false,EF\n"  # an empty n is absent, so missing
    )
    plain = run_plain(str(path), "schema-validation", {"schema": schema})
    assert plain.lines == [
        {"row": 2, "id": "b", "errors": [{"path": "$.n", "message": "12 is greater than the maximum of 10"}]},
        {
            "row": 3,
            "id": "c",
            "errors": [
                {"path": "$.code", "message": "'12' does not match '^[A-Z]+$'"},
                {"path": "$.ok", "message": "'yes' is not of type 'boolean'"},
                {"path": "$.x", "message": "'x' is not of type 'number', 'null'"},
            ],
        },
        {"row": 4, "id": "d", "errors": [{"path": "$", "message": "'n' is a required property"}]},
    ]
    uncoerced = run_plain(str(path), "schema-validation", {"schema": schema, "coerce": False})
    assert len(uncoerced.lines) == 4


async def test_errors_are_sorted_capped_and_counted_by_path() -> None:
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}
    processor = validator(schema)
    record = {"id": 7, "items": ["x"] * 150}
    chunk = Chunk(
        index=0, first_row=5, start_offset=0, end_offset=0, records=[record, {"items": []}], format="jsonl"
    )
    output = await processor.process(chunk, {}, ChunkContext("job"))
    [line] = output.lines
    assert (line["row"], line["id"], len(line["errors"])) == (5, 7, 20)
    paths = [e["path"] for e in line["errors"]]
    assert paths == sorted(paths) and paths[0] == "$.items[0]"
    counts = output.aggregates["errors_by_path"]
    assert len(counts) == MAX_ERROR_PATHS + 1 and counts[OTHER_PATHS] == 50
    assert sum(counts.values()) == 150
    assert output.aggregates | {"errors_by_path": {}} == {
        "records": 2,
        "valid": 1,
        "invalid": 1,
        "errors_by_path": {},
    }


def test_merged_path_counts_stay_capped_and_associative() -> None:
    processor = validator({"type": "object"})

    def part(paths: range) -> dict[str, Any]:
        return {"records": 1, "valid": 0, "invalid": 1, "errors_by_path": {f"$.p{i:03d}": 1 for i in paths}}

    a, b, c = part(range(0, 80)), part(range(150, 200)), part(range(60, 120))
    left = processor.merge(processor.merge(a, b), c)
    right = processor.merge(a, processor.merge(b, c))
    assert left == right
    assert len(left["errors_by_path"]) == MAX_ERROR_PATHS + 1
    assert sum(left["errors_by_path"].values()) == 80 + 50 + 60
    assert processor.merge({}, a) == a


@pytest.mark.parametrize(
    ("options", "errors"),
    [
        ({}, [(("schema",), "Field required")]),
        (
            {"schema": {"type": "strin"}},
            [
                (
                    ("schema",),
                    "not a valid JSON Schema: 'strin' is not valid under any of the given schemas"
                    " (at $.type)",
                )
            ],
        ),
        (
            {"schema": {"$schema": "https://example.com/mine"}},
            [(("schema",), "unknown $schema 'https://example.com/mine'")],
        ),
        (
            {"schema": {}, "coerce": "sometimes"},
            [(("coerce",), "Input should be a valid boolean, unable to interpret input")],
        ),
        ({"schema": {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}}, []),
    ],
)
def test_schema_options_are_checked(options: dict[str, Any], errors: list[Any]) -> None:
    assert validate_options("schema-validation", options) == errors
