"""The batch activities' file handling, run in Temporal's activity test environment."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from crucible.activities.batch import INPUT_INVALID, BatchActivities
from crucible.activities.batch_files import JobFiles, MissingPartError, PartMeta
from crucible.core.batch.models import BatchJobRequest, PrepareBatchInput
from crucible.core.config import Settings
from crucible.core.paths import PathPolicy
from crucible.core.secrets import SecretStore, secret_box
from crucible.core.store import RunStore
from tests.support.batch_data import write_sample_csv


@pytest.fixture
def activities(
    tmp_path: Path, store: RunStore, http: httpx.AsyncClient, settings: Settings
) -> BatchActivities:
    secrets = SecretStore(store.engine, secret_box(settings))
    paths = PathPolicy(roots=[str(tmp_path / "data")], forbidden=[str(tmp_path / "work")])
    return BatchActivities(tmp_path / "work", http, secrets, paths=paths)


async def test_the_first_pass_counts_records_and_profiles_them(
    activities: BatchActivities, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    source = tmp_path / "data" / "rows.csv"
    write_sample_csv(source, 2_500, anomalies=3)
    job = BatchJobRequest(
        str(source), "anomaly-detection", str(tmp_path / "data" / "o.jsonl"), chunk_size=1_000
    )
    plan = await ActivityEnvironment().run(activities.prepare_batch_input, PrepareBatchInput("batch-x", job))
    assert (plan.records, plan.chunks, plan.format) == (2_500, 3, "csv")
    assert plan.columns[0] == "id" and plan.data_offset == len("id,amount,latency_ms,region,quantity\n")
    assert set(plan.profile["columns"]) == {"amount", "latency_ms", "quantity"}


@pytest.mark.parametrize(
    ("input", "output", "words"),
    [
        ("/etc/hosts.csv", "data/o.jsonl", "outside the folders"),
        ("work/batch-y/parts/00000000.jsonl", "data/o.jsonl", "Crucible's own folders"),
        ("data/missing.csv", "data/o.jsonl", "not a readable file"),
        ("data/rows.csv", "data/nowhere/o.jsonl", "does not exist"),
        ("data/rows.txt", "data/o.jsonl", "format"),
    ],
)
async def test_an_unusable_input_or_output_is_a_final_error(
    activities: BatchActivities, tmp_path: Path, input: str, output: str, words: str
) -> None:
    (tmp_path / "data").mkdir()
    write_sample_csv(tmp_path / "data" / "rows.csv", 10)
    absolute = [p if p.startswith("/") else str(tmp_path / p) for p in (input, output)]
    job = BatchJobRequest(absolute[0], "anomaly-detection", absolute[1])
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(activities.prepare_batch_input, PrepareBatchInput("batch-x", job))
    assert raised.value.type == INPUT_INVALID and raised.value.non_retryable
    assert words in str(raised.value)


def test_parts_combine_in_chunk_order_into_one_file_at_once(tmp_path: Path) -> None:
    files = JobFiles(tmp_path / "work", "batch-x")
    for chunk in (2, 0, 1):
        files.write_part(PartMeta(chunk, chunk * 10 + 1, 0, 10, {}), [{"row": chunk * 10 + 1}])
    assert files.read_meta(1) == PartMeta(1, 11, 0, 10, {})
    assert files.read_meta(3) is None
    output = tmp_path / "out" / "result.jsonl"
    assert files.combine(3, output) == (3, output.stat().st_size)
    assert output.read_text().splitlines() == ['{"row":1}', '{"row":11}', '{"row":21}']
    assert [p.name for p in output.parent.iterdir()] == ["result.jsonl"], "no temporary file is left"
    with pytest.raises(MissingPartError):
        files.combine(4, output)
    assert files.combined() is None
    files.mark_combined(3, 30)
    assert files.combined() == (3, 30), "a retried combine answers from the marker"
    assert [p.name for p in files.root.iterdir()] == ["combined.json"], "the parts are gone"
