"""Record workflow histories for the replay tests: ``python -m tests.support.record_history``.

Run it when a workflow gains a new path worth guarding; never re-record a history to
make a failing replay test pass (that is what ``workflow.patched`` is for).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crucible.core.batch.models import (
    BatchCheckpoint,
    BatchJobInput,
    BatchJobRequest,
    BatchPlan,
    CombineOutputInput,
    CombineOutputResult,
    FailedChunk,
    PrepareBatchInput,
    ProcessChunksInput,
    ProcessChunksResult,
    Resumption,
)
from crucible.core.events import RecordEventsInput, RecordEventsResult
from crucible.core.pipelines.models import (
    Assertion,
    LoadPipelineInput,
    PipelineDefinition,
    PipelineRunInput,
    PipelineStep,
    PostWebhookInput,
)
from crucible.core.qa.models import (
    EvaluateQaInput,
    EvaluateQaResult,
    ExecuteOperationsInput,
    ExecuteOperationsResult,
    FetchSpecInput,
    FetchSpecResult,
    GeneratedScenarios,
    GenerateScenariosInput,
    GenerateScenariosResult,
    OperationOutcome,
    QaPackageRunInput,
)
from crucible.core.temporal import SEARCH_ATTRIBUTES, start_run
from crucible.stack.services import temporal_cli
from crucible.workflows.batch_job import BatchJobWorkflow
from crucible.workflows.pipeline import PipelineRunWorkflow, PipelineStepWorkflow
from crucible.workflows.qa_package import QaPackageRunWorkflow
from tests.support.chaos_history import record_chaos
from tests.support.probe import ProbeInput, ProbeWorkflow, ProceedInput
from tests.support.runs import start_probe
from tests.support.saga_history import record_saga
from tests.support.saga_test_history import record_saga_test

HISTORIES = Path(__file__).resolve().parent.parent / "workflows" / "histories"


@activity.defn(name="record_events")
async def record_events(batch: RecordEventsInput) -> RecordEventsResult:
    return RecordEventsResult(written=len(batch.events))


@activity.defn(name="fetch_spec")
async def fetch_spec(request: FetchSpecInput) -> FetchSpecResult:
    if request.spec_url == "http://spec.invalid/":
        raise ApplicationError("not an OpenAPI document", type="SpecInvalid", non_retryable=True)
    return FetchSpecResult(version="3.1", title="recorded", operations=[f"GET /items/{i}" for i in range(5)])


@activity.defn(name="generate_scenarios")
async def generate_scenarios(request: GenerateScenariosInput) -> GenerateScenariosResult:
    return GenerateScenariosResult(
        [
            GeneratedScenarios(key, failures=["timeout"] * (i % 3), scenarios=2, tokens=100)
            if i % 2
            else GeneratedScenarios(key, failures=["timeout"] * 3, fallback="the LLM failed 3 times")
            for i, key in enumerate(request.operations)
        ]
    )


@activity.defn(name="execute_operations")
async def execute_operations(request: ExecuteOperationsInput) -> ExecuteOperationsResult:
    return ExecuteOperationsResult(
        [OperationOutcome(key, 3, passed=not key.endswith("3"), statuses=[200]) for key in request.operations]
    )


@activity.defn(name="evaluate_qa")
async def evaluate_qa(request: EvaluateQaInput) -> EvaluateQaResult:
    return EvaluateQaResult("FAILED", 0.8, 5, 4, 1, new_failures=["GET /items/3 not_a_server_error"])


async def record_qa(env: WorkflowEnvironment) -> None:
    activities: list[Callable[..., Any]] = [
        record_events,
        fetch_spec,
        generate_scenarios,
        execute_operations,
        evaluate_qa,
    ]
    async with Worker(
        env.client, task_queue="record", workflows=[QaPackageRunWorkflow], activities=activities
    ):
        runs = {
            "qa_schema": QaPackageRunInput(base_url="http://target/"),
            "qa_llm": QaPackageRunInput(base_url="http://target/", generator="llm"),
            "qa_spec_invalid": QaPackageRunInput(base_url="http://target/", spec_url="http://spec.invalid/"),
        }
        for name, request in runs.items():
            handle = await start_run(
                env.client, QaPackageRunWorkflow.run, request, kind="qa", task_queue="record"
            )
            with contextlib.suppress(Exception):
                await handle.result()
            (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json())


@activity.defn(name="prepare_batch_input")
async def prepare_batch_input(request: PrepareBatchInput) -> BatchPlan:
    return BatchPlan(request.request.input, "csv", 30, 3, ["id", "amount"], 10, {"amount": {"mean": 1.0}})


@activity.defn(name="process_batch_chunks")
async def process_batch_chunks(request: ProcessChunksInput) -> ProcessChunksResult:
    at = request.start
    if request.request.input.endswith("broken.csv") and at.next_chunk == 1:
        return ProcessChunksResult(at, 0, stopped_at=FailedChunk(1, 11, "row 12: not a number", 4))
    done = BatchCheckpoint(at.next_chunk + 1, at.next_offset + 100, at.records_done + 10, {"records": 10})
    resumed = [Resumption(2, at.next_chunk)] if at.next_chunk == 2 else []
    return ProcessChunksResult(done, processed=1, resumed=resumed)


@activity.defn(name="combine_batch_output")
async def combine_batch_output(request: CombineOutputInput) -> CombineOutputResult:
    return CombineOutputResult(request.request.output, 3, 300, {"records": 30, "flagged": 3})


@activity.defn(name="load_pipeline")
async def load_pipeline(request: LoadPipelineInput) -> PipelineDefinition:
    pipeline_id = request.pipeline_id
    limit = 0 if pipeline_id.endswith("strict") else 10
    return PipelineDefinition(
        pipeline_id,
        "recorded",
        [
            PipelineStep(
                "detect", "batch", batch=BatchJobRequest("/in/rows.csv", "anomaly-detection", "/out/f")
            ),
            PipelineStep("check", "validate", assertions=[Assertion("output_lines", "<=", limit)]),
            PipelineStep("tell", "notify", webhook_secret="webhook-1", webhook_host="hooks.example.com"),
        ],
    )


@activity.defn(name="post_webhook")
async def post_webhook(request: PostWebhookInput) -> int:
    return 200


async def record_batch(env: WorkflowEnvironment) -> None:
    activities: list[Callable[..., Any]] = [
        record_events,
        prepare_batch_input,
        process_batch_chunks,
        combine_batch_output,
        load_pipeline,
        post_webhook,
    ]
    workflows = [BatchJobWorkflow, PipelineRunWorkflow, PipelineStepWorkflow]
    async with Worker(env.client, task_queue="record", workflows=workflows, activities=activities):
        job = BatchJobRequest("/in/rows.csv", "anomaly-detection", "/out/flagged.jsonl")
        broken = BatchJobRequest("/in/broken.csv", "anomaly-detection", "/out/flagged.jsonl")
        resumed_at = BatchCheckpoint(1, 110, 10, {"records": 10})
        plan = BatchPlan("/in/broken.csv", "csv", 30, 3, ["id", "amount"], 10, {})
        runs: dict[str, tuple[Any, Any, str]] = {
            # Two segments per run: the job continues as new once before it completes.
            "batch_continued": (
                BatchJobWorkflow.run,
                BatchJobInput("batch-a", job, segments_per_run=2),
                "batch",
            ),
            "batch_chunk_failed": (BatchJobWorkflow.run, BatchJobInput("batch-b", broken), "batch"),
            "batch_resumed": (
                BatchJobWorkflow.run,
                BatchJobInput("batch-b", job, resumed_from="batch-b", plan=plan, checkpoint=resumed_at),
                "batch",
            ),
            "pipeline_completed": (PipelineRunWorkflow.run, PipelineRunInput("pl-recorded"), "pipeline"),
            "pipeline_step_failed": (PipelineRunWorkflow.run, PipelineRunInput("pl-strict"), "pipeline"),
        }
        for name, (run, arg, kind) in runs.items():
            # A pipeline names its step children after its own id, which the replay test uses.
            run_id = "replay" if kind == "pipeline" else None
            handle = await start_run(env.client, run, arg, kind=kind, task_queue="record", run_id=run_id)
            with contextlib.suppress(Exception):
                await handle.result()
            history = await env.client.get_workflow_handle(
                handle.id, run_id=handle.result_run_id
            ).fetch_history()
            (HISTORIES / f"{name}.json").write_text(history.to_json())
            if name == "batch_continued":  # and the run it continued as, to the end
                history = await env.client.get_workflow_handle(handle.id).fetch_history()
                (HISTORIES / "batch_continued_final.json").write_text(history.to_json())


async def main(which: str) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=SEARCH_ATTRIBUTES
    )
    if which in ("qa", "batch"):
        async with env:
            await (record_qa if which == "qa" else record_batch)(env)
        return
    if which == "saga":
        async with env:
            await record_saga(env, HISTORIES, record_events)
        return
    if which == "sagatest":
        async with env:
            await record_saga_test(env, HISTORIES, record_events)
        return
    if which == "chaos":
        async with env:
            await record_chaos(env, HISTORIES, record_events)
        return
    async with (
        env,
        Worker(env.client, task_queue="record", workflows=[ProbeWorkflow], activities=[record_events]),
    ):
        proceeded = await start_probe(env.client, "record", ProbeInput(steps=3, wait_for_proceed=True))
        await asyncio.sleep(0.5)
        await proceeded.signal(ProbeWorkflow.proceed, ProceedInput(note="go"))
        await proceeded.result()

        failed = await start_probe(env.client, "record", ProbeInput(steps=1, fail_with="boom"))
        cancelled = await start_probe(env.client, "record", ProbeInput(steps=1, wait_for_proceed=True))
        await asyncio.sleep(0.5)
        await cancelled.cancel()
        for handle in (failed, cancelled):
            with contextlib.suppress(Exception):
                await handle.result()

        for name, handle in (("proceeded", proceeded), ("failed", failed), ("cancelled", cancelled)):
            history = await handle.fetch_history()
            (HISTORIES / f"probe_{name}.json").write_text(history.to_json())


if __name__ == "__main__":
    # `qa`, `batch`, `saga`, `sagatest` or `chaos` records those runs' histories only; no argument, the
    # probe's.
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "probe"))
