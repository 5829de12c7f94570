"""Team quotas: over its concurrent-runs or runs-per-day quota, a team gets 429 and Retry-After."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from crucible.core.auth import ALL_SCOPES, AccountStore, Role
from crucible.core.errors import QuotaExceededError
from crucible.core.quotas import CONCURRENT_RETRY_S, Limits, QuotaStore
from crucible.core.store import RunStore, fetch_all_events
from crucible.worker import WORKFLOWS
from crucible.workflows.admission import ScheduledAdmission
from tests.core.auth.accounts import Account, make_account
from tests.support.bodies import QUICK_QA, WAITING_EXPERIMENT
from tests.support.qa import wait_closed
from tests.support.servers import ApiServer

pytestmark = [pytest.mark.usefixtures("crucible_worker"), pytest.mark.timeout(120)]


async def signed_in(accounts: AccountStore, account: Account, api_server: ApiServer) -> httpx.AsyncClient:
    _, token = await accounts.create_api_token(
        account.user_id,
        name="quota",
        scopes=list(ALL_SCOPES),
        team_id=None,
        expires_at=None,
        now=datetime.now(UTC),
    )
    return httpx.AsyncClient(
        base_url=api_server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


async def count(store: RunStore, table: str) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_a_team_over_its_quotas_gets_429_with_retry_after(
    store: RunStore, accounts: AccountStore, api_server: ApiServer, tmp_path: Path
) -> None:
    account = await make_account(accounts, role=Role.runner)
    await QuotaStore(store.engine, Limits(None, None)).set_limits(account.team_id, Limits(1, 3))
    async with await signed_in(accounts, account, api_server) as api:
        waiting = await api.post("/api/v1/chaos-experiments", json=WAITING_EXPERIMENT)
        assert waiting.status_code == 202, waiting.text
        refused = await api.post("/api/v1/qa-runs", json=QUICK_QA)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == str(CONCURRENT_RETRY_S)
        assert "1 runs going, its quota of concurrent runs" in refused.json()["detail"]
        # A refused run takes the secrets its request sealed with it.
        before = await count(store, "secrets")
        job = {
            "input": str(tmp_path / "rows.jsonl"),
            "output": str(tmp_path / "out.jsonl"),
            "processor": "http",
            "options": {"url": "http://127.0.0.1:9/rows"},
            "headers": {"Authorization": "Bearer not-kept"},
        }
        assert (await api.post("/api/v1/batch-jobs", json=job)).status_code == 429
        assert await count(store, "secrets") == before
        # …and a refused experiment leaves no definition behind.
        experiments = await count(store, "chaos_experiments")
        assert (await api.post("/api/v1/chaos-experiments", json=WAITING_EXPERIMENT)).status_code == 429
        assert await count(store, "chaos_experiments") == experiments

        run_id = waiting.json()["run_id"]
        assert (await api.post(f"/api/v1/runs/{run_id}/cancel")).status_code == 202
        await wait_closed(api, run_id)
        # Four at once for the one free place: one is admitted.
        burst = await asyncio.gather(*(api.post("/api/v1/qa-runs", json=QUICK_QA) for _ in range(4)))
        assert sorted(r.status_code for r in burst) == [202, 429, 429, 429], [r.text for r in burst]
        await wait_closed(api, next(r for r in burst if r.status_code == 202).json()["run_id"])
        third = await api.post("/api/v1/qa-runs", json=QUICK_QA)
        assert third.status_code == 202, third.text
        await wait_closed(api, third.json()["run_id"])

        daily = await api.post("/api/v1/qa-runs", json=QUICK_QA)
        assert daily.status_code == 429, daily.text
        assert "started 3 runs in the last 24 hours" in daily.json()["detail"]
        assert 86_000 < int(daily.headers["Retry-After"]) <= 86_400
        # Refused runs left nothing behind: the team has the three it was allowed.
        listed = (await api.get("/api/v1/runs", params={"limit": 50})).json()["items"]
        assert len(listed) == 3 and {r["team_id"] for r in listed} == {account.team_id}


async def test_the_server_defaults_apply_to_a_team_without_quotas_of_its_own(
    store: RunStore, accounts: AccountStore, api_server: ApiServer
) -> None:
    quotas = QuotaStore(store.engine, Limits(concurrent_runs=None, runs_per_day=1))
    account = await make_account(accounts)
    async with quotas.admit("qa-quota-default-1", account.team_id):
        pass
    with pytest.raises(QuotaExceededError, match="its daily quota"):
        async with quotas.admit("qa-quota-default-2", account.team_id):
            pass
    await quotas.set_limits(account.team_id, Limits(None, None))  # a row of NULLs: no limit at all
    for n in range(3):
        async with quotas.admit(f"qa-quota-none-{n}", account.team_id):
            pass


async def test_the_runs_a_schedule_starts_are_held_to_the_teams_quota(
    store: RunStore, accounts: AccountStore, api_server: ApiServer, client: Client
) -> None:
    account = await make_account(accounts, role=Role.runner)
    await QuotaStore(store.engine, Limits(None, None)).set_limits(account.team_id, Limits(None, 1))
    async with await signed_in(accounts, account, api_server) as api:
        created = await api.post(
            "/api/v1/schedules",
            json={
                "name": f"quota {uuid.uuid4().hex[:6]}",
                "target": {"kind": "qa", "run": QUICK_QA},
                "interval_s": 1,
                "overlap": "allow_all",
            },
        )
        assert created.status_code == 201, created.text
        schedule = client.get_schedule_handle(created.json()["schedule_id"])
        try:
            async with asyncio.timeout(30):
                while len(actions := (await schedule.describe()).info.recent_actions) < 3:
                    await asyncio.sleep(0.3)
        finally:
            await schedule.delete()
    outcomes: dict[str, str] = {}
    for action in actions:
        run_id = action.action.workflow_id  # type: ignore[attr-defined]
        try:
            await client.get_workflow_handle(run_id).result()
            outcomes[run_id] = "admitted"
        except WorkflowFailureError as failed:
            assert isinstance(failed.cause, ApplicationError), failed.cause
            assert failed.cause.type == "QuotaExceeded" and "its daily quota" in failed.cause.message
            outcomes[run_id] = "refused"
    # The first run the schedule started took the day's one place; the others were refused
    # before their first step.
    assert sorted(outcomes.values()) == ["admitted"] + ["refused"] * (len(outcomes) - 1), outcomes
    async with store.engine.connect() as conn:
        admitted = (
            await conn.execute(
                text("SELECT run_id FROM run_admissions WHERE team_id = :team"), {"team": account.team_id}
            )
        ).scalars()
        assert [outcomes[run_id] for run_id in admitted] == ["admitted"]
    # A refused run is in the team's list, failed, and its log says why.
    for run_id in (run_id for run_id, outcome in outcomes.items() if outcome == "refused"):
        run = await store.get_run(run_id)
        assert run is not None and (run.status, run.team_id) == ("FAILED", account.team_id)
        events = await fetch_all_events(store, run_id)
        assert [e.type for e in events] == ["REQUESTED", "FAILED"]
        assert events[-1].data["reason"] == "QuotaExceeded" and "daily quota" in events[-1].data["message"]
    # Both paths replay: the admission is part of a scheduled run's history.
    replayer = Replayer(
        workflows=WORKFLOWS, interceptors=[ScheduledAdmission()], data_converter=client.data_converter
    )
    for run_id in outcomes:
        history = await client.get_workflow_handle(run_id).fetch_history()
        assert (await replayer.replay_workflow(history)).replay_failure is None
