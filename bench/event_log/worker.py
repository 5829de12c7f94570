"""The benchmark's worker process: ``python -m bench.event_log.worker``.

It is Crucible's worker (``build_worker``, the real event sink) plus the two benchmark
workflows and the baseline's activity, configured by the same environment variables
as ``crucible worker``. It prints :data:`READY_LINE` once it polls its task queue.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from bench.event_log.activities import discard_events
from bench.event_log.workflows import DiscardEventsBenchWorkflow, EventLogBenchWorkflow
from crucible.core.config import Settings, load_settings
from crucible.core.db import create_engine
from crucible.core.kafka import EventPublisher
from crucible.core.logs import configure_logging
from crucible.core.store import RunStore
from crucible.core.temporal import connect
from crucible.worker import WorkerDeps, build_worker

READY_LINE = "bench worker polling"


async def serve(settings: Settings) -> None:
    """Poll the task queue until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    client = await connect(settings, wait_s=30)
    engine = create_engine(settings.effective_database_url)
    publisher = EventPublisher(
        settings.effective_kafka_bootstrap_servers,
        topic=settings.kafka_events_topic,
        idempotence=settings.kafka_idempotence,
    )
    try:
        worker = build_worker(
            client,
            WorkerDeps(store=RunStore(engine), publisher=publisher),
            task_queue=settings.task_queue,
            workflows=[EventLogBenchWorkflow, DiscardEventsBenchWorkflow],
            activities=[discard_events],
            shutdown_grace=timedelta(seconds=settings.worker_shutdown_grace_s),
        )
        async with worker:
            print(f"{READY_LINE} {settings.task_queue}", flush=True)
            await stop.wait()
    finally:
        await publisher.stop()
        await engine.dispose()


def main() -> None:
    settings = load_settings(use_stack_env=False)
    configure_logging(settings.log_level)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
