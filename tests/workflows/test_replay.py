"""Saved histories still replay: the shared event log stays deterministic for running workflows."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from crucible.workflows.admission import ScheduledAdmission
from crucible.workflows.batch_job import BatchJobWorkflow
from crucible.workflows.chaos_experiment import ChaosExperimentWorkflow
from crucible.workflows.pipeline import PipelineRunWorkflow, PipelineStepWorkflow
from crucible.workflows.qa_package import QaPackageRunWorkflow
from crucible.workflows.saga import SagaWorkflow
from crucible.workflows.saga_test import SagaTestWorkflow
from tests.support.probe import ProbeWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_the_recorded_paths_are_all_there() -> None:
    assert {p.stem for p in HISTORIES} == {
        "probe_proceeded",
        "probe_failed",
        "probe_cancelled",
        "qa_schema",
        "qa_llm",
        "qa_spec_invalid",
        "batch_continued",
        "batch_continued_final",
        "batch_chunk_failed",
        "batch_resumed",
        "pipeline_completed",
        "pipeline_step_failed",
        "saga_completed",
        "saga_compensated",
        "saga_manual_resolved",
        "saga_aborted",
        "saga_cancelled",
        "sagatest_passed",
        "sagatest_failed",
        "chaos_confirmed",
        "chaos_breached",
        "chaos_blocked",
        "chaos_cancelled",
    }


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json("replay", path.read_text())
    workflows = [
        ProbeWorkflow,
        QaPackageRunWorkflow,
        BatchJobWorkflow,
        PipelineRunWorkflow,
        PipelineStepWorkflow,
        SagaWorkflow,
        SagaTestWorkflow,
        ChaosExperimentWorkflow,
    ]
    # With the worker's workflow interceptor, which the histories were recorded under.
    result = await Replayer(workflows=workflows, interceptors=[ScheduledAdmission()]).replay_workflow(history)
    assert result.replay_failure is None
