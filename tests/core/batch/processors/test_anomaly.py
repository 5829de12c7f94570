"""Anomaly detection: global statistics, the same flags whatever the chunking."""

from __future__ import annotations

from pathlib import Path

import pytest

from crucible.core.batch.plain import run_plain
from crucible.core.batch.processors import ChunkContext, build_processor
from crucible.core.batch.processors.anomaly import AnomalyDetector
from crucible.core.batch.records import Chunk, MalformedRecordError, iter_records
from tests.support.batch_data import process_in_chunks, write_sample_csv

ROWS = 3000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    path = tmp_path_factory.mktemp("anomaly") / "sample.csv"
    return path, write_sample_csv(path, ROWS, anomalies=12)


def detector(**options: object) -> AnomalyDetector:
    processor = build_processor("anomaly-detection", dict(options))
    assert isinstance(processor, AnomalyDetector)
    return processor


async def test_every_chunking_gives_the_plain_runs_lines(sample: tuple[Path, list[int]]) -> None:
    path, planted = sample
    plain = run_plain(str(path), "anomaly-detection", {})
    processor = detector()
    profile = processor.profile(iter_records(str(path), "csv"))
    assert profile["columns"] == ["amount", "latency_ms", "quantity"]  # not id, not region
    for size in (1, 7, 1000):
        lines, aggregates = await process_in_chunks(processor, path, size=size, profile=profile)
        assert lines == plain.lines
        assert processor.summary(aggregates, profile) == plain.summary

    flagged = {line["row"] for line in plain.lines}
    assert set(planted) <= flagged
    assert plain.records == ROWS
    assert plain.summary["flagged"] == len(plain.lines)
    by_row = {line["row"]: line for line in plain.lines}
    first = by_row[planted[0]]
    assert first["id"] == f"r{planted[0]:06d}"
    amount_flags = [f for f in first["flags"] if f["column"] == "amount"]
    assert [f["method"] for f in amount_flags] == ["zscore", "iqr"]
    thresholds = plain.summary["thresholds"]["amount"]
    assert amount_flags[1]["fence"] == thresholds["upper"]
    z = (amount_flags[0]["value"] - thresholds["mean"]) / thresholds["std"]
    assert amount_flags[0]["score"] == round(z, 6) and z > 3


def chunk(rows: list[dict[str, object]], *, first_row: int = 1) -> Chunk:
    return Chunk(index=0, first_row=first_row, start_offset=0, end_offset=0, records=rows, format="jsonl")


async def test_flags_are_judged_against_the_whole_inputs_statistics() -> None:
    values = [10, 11, 9, 10, 12, 8, 10, 11, 9, 10] * 3 + [100]
    records = [{"n": v, "label": "x"} for v in values]
    processor = detector(z_threshold=3)
    profile = processor.profile(enumerate(records, 1))
    assert profile["id_column"] is None and profile["columns"] == ["n"]
    # The outlier alone in its chunk is still judged by the whole input's mean and spread.
    output = await processor.process(chunk(records[-1:], first_row=31), profile, ChunkContext("job"))
    assert [(line["row"], line["id"]) for line in output.lines] == [(31, None)]
    assert [f["method"] for f in output.lines[0]["flags"]] == ["zscore", "iqr"]
    assert output.aggregates == {"records": 1, "flagged": 1, "by_column": {"n": {"zscore": 1, "iqr": 1}}}
    quiet = await processor.process(chunk(records[:5]), profile, ChunkContext("job"))
    assert quiet.lines == [] and quiet.aggregates["records"] == 5


async def test_options_choose_columns_methods_and_the_id() -> None:
    records = [{"key": f"k{i}", "a": i % 5, "b": 1.0, "c": ""} for i in range(40)] + [
        {"key": "odd", "a": 50, "b": 1.0}
    ]
    processor = detector(methods=["iqr"], id_column="key", iqr_k=3)
    profile = processor.profile(enumerate(records, 1))
    # b never varies: no z-scores, and nothing outside its fences; c has no numbers at all.
    assert profile["columns"] == ["a", "b"] and profile["id_column"] == "key"
    output = await processor.process(chunk(records), profile, ChunkContext("job"))
    # 41 sorted values of a: eight each of 0..4, then 50; q1 = x[10] = 1, q3 = x[30] = 3.
    upper = 3 + 3 * (3 - 1)
    assert output.lines == [
        {"row": 41, "id": "odd", "flags": [{"column": "a", "value": 50.0, "method": "iqr", "fence": upper}]}
    ]
    only_b = detector(columns=["b"], methods=["zscore"])
    profile = only_b.profile(enumerate(records, 1))
    assert profile["columns"] == ["b"] and profile["stats"]["b"]["std"] == 0
    assert (await only_b.process(chunk(records), profile, ChunkContext("job"))).lines == []


async def test_a_value_that_is_not_a_number_is_malformed() -> None:
    records = [{"id": "a", "n": "1"}, {"id": "b", "n": "2"}, {"id": "c", "n": "lots"}]
    with pytest.raises(MalformedRecordError) as caught:
        detector(columns=["n"]).profile(enumerate(records, 1))
    assert (caught.value.row, caught.value.reason) == (3, "column 'n': 'lots' is not a number")
    # Without columns named, such a column is simply not numeric.
    assert detector().profile(enumerate(records, 1))["columns"] == []

    processor = detector(columns=["n"])
    profile = processor.profile(enumerate(records[:2], 1))
    bad: list[dict[str, object]] = [{"n": "1"}, {"n": ""}, {"n": True}]
    with pytest.raises(MalformedRecordError) as caught:
        await processor.process(chunk(bad, first_row=10), profile, ChunkContext("job"))
    assert (caught.value.row, caught.value.reason) == (12, "column 'n': True is not a number")


def test_merge_is_associative_with_an_empty_identity() -> None:
    processor = detector()
    a = {"records": 2, "flagged": 1, "by_column": {"x": {"zscore": 1, "iqr": 0}}}
    b = {"records": 3, "flagged": 0, "by_column": {"x": {"zscore": 0, "iqr": 0}}}
    c = {"records": 1, "flagged": 1, "by_column": {"y": {"zscore": 0, "iqr": 1}}}
    assert processor.merge({}, a) == a == processor.merge(a, {})
    assert processor.merge(processor.merge(a, b), c) == processor.merge(a, processor.merge(b, c))
