"""Run ids: the ones Crucible makes, and the ones Temporal Schedules make from an action id."""

from __future__ import annotations

import pytest

from crucible.core.runs import kind_of, new_run_id, schedule_of


def test_a_new_run_id_names_its_kind() -> None:
    run_id = new_run_id("qa")
    assert run_id.startswith("qa-") and len(run_id) == 35
    assert (kind_of(run_id), schedule_of(run_id)) == ("qa", None)


@pytest.mark.parametrize(
    ("run_id", "kind", "schedule"),
    [
        ("pipeline-nightly-orders-2026-01-01T03:17:00Z", "pipeline", "nightly-orders"),
        ("qa-smoke-2026-11-22T01:30:11Z", "qa", "smoke"),
        ("batch-a1-b2-2025-01-01T00:00:00Z", "batch", "a1-b2"),
    ],
)
def test_a_scheduled_run_id_names_its_kind_and_schedule(run_id: str, kind: str, schedule: str) -> None:
    assert (kind_of(run_id), schedule_of(run_id)) == (kind, schedule)


@pytest.mark.parametrize(
    "run_id",
    [
        "crucible-retention-2026-01-01T03:17:00Z",  # not a kind of run: the retention workflow
        "qa-2026-01-01T03:17:00Z",  # no schedule id
        "qa-nightly-2026-01-01T03:17:00",  # no Z
        "qa-nightly-2026-01-01T03:17:00Z\n",
        "qa-Nightly-2026-01-01T03:17:00Z",
        "qa-" + "a" * 200 + "-2026-01-01T03:17:00Z",
        "qa-nightly",
        "pipeline-nightly-orders",
    ],
)
def test_other_ids_are_not_runs(run_id: str) -> None:
    assert (kind_of(run_id), schedule_of(run_id)) == (None, None)
