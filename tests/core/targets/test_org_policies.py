"""Organisations' target policies, applied by a real worker to real runs.

The worker is Crucible's own (the `worker` fixture: `build_worker`), on a queue of its own, with
the session's settings (dev mode: loopback allowed unless an organisation says otherwise). Each test uses
organisations of its own, so no policy cached by another test applies.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from crucible.core.auth import AccountStore
from crucible.core.config import Settings
from crucible.core.qa.models import QaPackageRunInput
from crucible.core.qa.store import QaStore
from crucible.core.runs import DEFAULT_ORG, new_run_id
from crucible.core.store import RunStore, fetch_all_events
from crucible.core.targets import TargetPolicy, TargetRefused
from crucible.core.targets.orgs import OrgTargetPolicies
from crucible.core.targets.runs import TargetPolicyInterceptor
from crucible.core.temporal import start_run
from crucible.workflows.qa_package import KIND, QaPackageRunWorkflow
from tests.core.targets.servers import TARGET_HOST, Servers
from tests.support.targets import simple_spec

pytestmark = pytest.mark.timeout(90)

PATHS = ["/a", "/b"]
REFUSED = "target refused by policy"


async def new_org(store: RunStore) -> str:
    org_id = f"org-{uuid.uuid4().hex[:10]}"
    await AccountStore(store.engine).ensure_org(org_id, name=org_id, now=datetime.now(UTC))
    return org_id


async def org_with(store: RunStore, settings: Settings, **lists: Any) -> str:
    """A new organisation with lists of its own."""
    org_id = await new_org(store)
    await OrgTargetPolicies(store.engine, settings).set_policy(org_id, **lists)
    return org_id


async def start_qa(
    client: Client,
    store: RunStore,
    task_queue: str,
    org_id: str,
    *,
    base_url: str,
    spec_url: str | None = None,
) -> WorkflowHandle[Any, Any]:
    run_id = new_run_id(KIND)
    spec = None if spec_url else simple_spec(PATHS)
    await QaStore(store.engine).create(run_id, request={"base_url": base_url}, spec=spec)
    request = QaPackageRunInput(base_url=base_url, spec_url=spec_url, request_timeout_s=5)
    return await start_run(
        client,
        QaPackageRunWorkflow.run,
        request,
        kind=KIND,
        task_queue=task_queue,
        run_id=run_id,
        org_id=org_id,
    )


async def activity_attempts(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, int]]:
    """(activity type, attempt) of every activity the run started, from its history."""
    scheduled: dict[int, str] = {}
    attempts: list[tuple[str, int]] = []
    async for event in handle.fetch_history_events():
        if event.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == HistoryEventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            attempts.append((scheduled[started.scheduled_event_id], started.attempt))
    return attempts


async def refusal_messages(store: RunStore, run_id: str) -> list[str]:
    return [
        failure["message"]
        for row in await QaStore(store.engine).results(run_id)
        for failure in (row.result or {}).get("failures", [])
    ]


async def test_a_run_of_an_org_whose_policy_refuses_its_target_says_so_at_once(
    worker: Worker, client: Client, store: RunStore, settings: Settings, servers: Servers
) -> None:
    org = await org_with(store, settings, hosts=["api.example.com"], include_defaults=False)
    canary = f"http://127.0.0.1:{servers.port}"
    before = servers.canary.connections

    started = time.monotonic()
    handle = await start_qa(client, store, worker.task_queue, org, base_url=canary)
    result = await handle.result()
    took = time.monotonic() - started

    assert result.verdict == "FAILED" and result.failed == len(PATHS)
    messages = await refusal_messages(store, handle.id)
    assert len(messages) >= len(PATHS)
    assert all(m.startswith(f"{REFUSED}: {canary}") and "(rule: not-allowed)" in m for m in messages), (
        messages
    )
    assert servers.canary.connections == before  # nothing reached it
    attempts = await activity_attempts(handle)
    assert ("execute_operations", 1) in attempts
    assert all(attempt == 1 for _, attempt in attempts), attempts
    assert took < 15, f"the refused run took {took:.1f} s"
    print(f"refused QA run: {took:.2f} s, activity attempts {attempts}")


async def test_a_refused_spec_url_fails_the_run_once_naming_the_refusal(
    worker: Worker, client: Client, store: RunStore, settings: Settings, servers: Servers
) -> None:
    org = await org_with(store, settings, ports=["443"])
    canary = f"http://127.0.0.1:{servers.port}"
    before = servers.canary.connections

    started = time.monotonic()
    handle = await start_qa(client, store, worker.task_queue, org, base_url=canary, spec_url=f"{canary}/spec")
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    took = time.monotonic() - started

    assert REFUSED in str(failed.value.cause) and "(rule: port)" in str(failed.value.cause)
    events = await fetch_all_events(store, handle.id)
    [invalid] = [e for e in events if e.type == "SPEC_INVALID"]
    assert invalid.data["reason"].count(REFUSED) == 1 and f"{canary}" in invalid.data["reason"]
    assert events[-1].type == "FAILED" and REFUSED in events[-1].data["message"]
    assert servers.canary.connections == before
    assert [a for a in await activity_attempts(handle) if a[0] == "fetch_spec"] == [("fetch_spec", 1)]
    assert took < 15, f"the refused run took {took:.1f} s"
    print(f"refused spec URL: {took:.2f} s")


async def test_an_org_that_lists_its_target_reaches_it(
    worker: Worker, client: Client, store: RunStore, settings: Settings, servers: Servers
) -> None:
    lists = {"networks": [f"{TARGET_HOST}/32"], "ports": [servers.port], "include_defaults": False}
    org = await org_with(store, settings, **lists)
    before = len(servers.target.requests)

    handle = await start_qa(client, store, worker.task_queue, org, base_url=servers.target_url)
    await handle.result()

    assert len(servers.target.requests) > before
    assert not any(REFUSED in m for m in await refusal_messages(store, handle.id))


async def test_each_run_is_judged_by_its_own_organisations_policy(
    worker: Worker, client: Client, store: RunStore, settings: Settings, servers: Servers
) -> None:
    opened = await org_with(store, settings, networks=[f"{TARGET_HOST}/32"], ports=[servers.port])
    closed = await org_with(store, settings, hosts=["api.example.com"], include_defaults=False)
    before = len(servers.target.requests)

    handles = await asyncio.gather(
        *(
            start_qa(client, store, worker.task_queue, org, base_url=servers.target_url)
            for org in (opened, closed, opened, closed)
        )
    )
    await asyncio.gather(*(h.result() for h in handles))

    for handle, org in zip(handles, (opened, closed, opened, closed), strict=True):
        refused = [m for m in await refusal_messages(store, handle.id) if REFUSED in m]
        assert bool(refused) == (org == closed), (org, refused)
    # Two runs of the open organisation, one request per scenario; none of the closed one's.
    sent = len(servers.target.requests) - before
    results = [await QaStore(store.engine).results(h.id) for h in handles[::2]]
    assert sent == sum(len(r) for r in results)


async def test_an_orgs_lists_replace_the_installations_and_a_wrong_entry_is_refused(
    store: RunStore, settings: Settings
) -> None:
    policies = OrgTargetPolicies(store.engine, settings, ttl_s=0)
    org = await new_org(store)
    assert await policies.policy_for(org) == await OrgTargetPolicies(store.engine, settings).policy_for(
        "none"
    )

    policy = await policies.set_policy(
        org, hosts=["api.internal"], networks=["10.20.0.0/16"], ports=[443, "8443"]
    )
    assert policy == await policies.policy_for(org)
    assert policy.mode.value == "dev"  # the mode is the installation's
    assert policy.hosts == {"api.internal"} and policy.ports == {443, 8443} and policy.stack
    with pytest.raises(ValueError, match=re.escape("10.0.0.1/8")):
        await policies.set_policy(org, networks=["10.0.0.1/8"])
    assert await policies.policy_for(org) == policy  # the wrong one was not stored

    with pytest.raises(TargetRefused) as refused:
        await OrgTargetPolicies(store.engine, settings, ttl_s=0).check(org, "http://127.0.0.1:8080/")
    assert refused.value.rule == "port"
    await policies.clear_policy(org)
    assert await policies.lists_of(org) is None
    assert isinstance(await policies.policy_for(org), TargetPolicy)


@workflow.defn(sandboxed=False)
class ChildRun:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False, timeout=timedelta(seconds=30))


@workflow.defn(sandboxed=False)
class ParentRun:
    @workflow.run
    async def run(self, child_id: str) -> None:
        await workflow.execute_child_workflow(ChildRun.run, id=child_id)


async def test_a_child_without_an_org_has_its_parents_and_a_run_without_one_the_default(
    client: Client, store: RunStore, settings: Settings, task_queue: str
) -> None:
    org = await new_org(store)
    interceptor = TargetPolicyInterceptor(client, OrgTargetPolicies(store.engine, settings))
    child_id = f"child-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[ParentRun, ChildRun]):
        parent = await start_run(
            client, ParentRun.run, child_id, kind="flow", task_queue=task_queue, org_id=org
        )
        plain = await client.start_workflow(
            ChildRun.run, id=f"plain-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        try:
            async with asyncio.timeout(10):
                while not (await parent.describe()).raw_description.pending_children:
                    await asyncio.sleep(0.05)
            assert await interceptor.org_of(child_id) == org
            assert await interceptor.org_of(parent.id) == org
            assert await interceptor.org_of(plain.id) == DEFAULT_ORG
        finally:
            await parent.terminate()
            await plain.terminate()
