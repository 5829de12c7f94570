"""Record workflow histories for the replay tests: ``python -m tests.support.record_history``.

Run it when a workflow gains a new path worth guarding; never re-record a history to
make a failing replay test pass (that is what ``workflow.patched`` is for).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from crucible.core.events import RecordEventsInput, RecordEventsResult
from crucible.core.temporal import SEARCH_ATTRIBUTES
from crucible.stack.services import temporal_cli
from tests.support.probe import ProbeInput, ProbeWorkflow, ProceedInput
from tests.support.runs import start_probe

HISTORIES = Path(__file__).resolve().parent.parent / "workflows" / "histories"


@activity.defn(name="record_events")
async def record_events(batch: RecordEventsInput) -> RecordEventsResult:
    return RecordEventsResult(written=len(batch.events))


async def main() -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), search_attributes=SEARCH_ATTRIBUTES
    )
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
    asyncio.run(main())
