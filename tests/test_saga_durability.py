"""A saga whose worker is killed in the middle of a compensation finishes it on a new worker,
and the target records no compensation twice: the retry carries the same idempotency key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from crucible.core.config import Settings
from crucible.core.store import RunStore, fetch_all_events
from tests.support.dev import Child
from tests.support.qa import serving
from tests.support.saga_target import SagaTarget
from tests.support.sagas import shop_steps, start_saga, states
from tests.test_durability import start_worker, worker_env

pytestmark = pytest.mark.timeout(90)


async def test_a_compensation_survives_kill_9_of_its_worker_and_runs_once(
    settings: Settings, client: Client, store: RunStore, task_queue: str, tmp_path: Path
) -> None:
    env = worker_env(settings, task_queue, tmp_path / "home")
    assert settings.secrets_key is not None
    env["CRUCIBLE_SECRETS_KEY"] = settings.secrets_key.get_secret_value()
    # Step 3 is refused; step 1's compensation (cancelling the order) takes a while.
    target = SagaTarget(failing={"/payments": 400}, slow={"DELETE /orders/o-1": 1.5})
    first = await start_worker(env, "worker", module="crucible")
    second: Child | None = None
    try:
        async with serving(target.app) as shop:
            steps = shop_steps(shop.url)[:3]
            handle = await start_saga(
                client, store, settings, steps, task_queue=task_queue, heartbeat_timeout_s=2
            )
            run_id = handle.id
            key = f"{run_id}-step1-compensation"
            async with asyncio.timeout(30):
                while target.arrivals()[key] == 0:
                    await asyncio.sleep(0.02)
            await first.kill()  # SIGKILL while the shop is still cancelling the order
            second = await start_worker(env, "worker", module="crucible")
            result = await asyncio.wait_for(handle.result(), 60)
    finally:
        await first.kill()
        if second is not None:
            await second.terminate()

    assert result.state == "SagaCancelled" and result.fully_compensated and result.restored
    assert target.arrivals()[key] >= 2, "the compensation was sent again after the crash"
    keys = [k for k in target.recorded_keys() if k and k.endswith("-compensation")]
    assert keys == [f"{run_id}-step2-compensation", key], "each compensation took effect once"
    assert target.orders == {"o-1": "CANCELLED"} and target.stock == {"sku-1": 10}

    events = list(await fetch_all_events(store, run_id))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert states(events)[-3:] == ["Compensating", "CompensationCompleted", "SagaCancelled"]
    compensated = [e.data for e in events if e.type == "STEP_COMPENSATED"]
    assert [(c["step"], c["attempt"]) for c in compensated] == [(2, 1), (1, 2)]
    assert events[-1].type == "COMPLETE"
