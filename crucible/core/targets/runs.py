"""Each activity runs under its run's organisation's target policy.

:class:`TargetPolicyInterceptor` is a worker interceptor. Before an activity runs, it finds
the organisation of the run the activity belongs to and wraps the activity in
:func:`~crucible.core.targets.transport.using_policy` with that organisation's policy, so the
worker's guarded client judges every request the activity makes (and the tasks it starts,
which inherit the policy; a thread does not, unless started with ``asyncio.to_thread``).

A run's organisation is its ``CrucibleOrg`` search attribute. The workflow is described once
per run and remembered; a child without the attribute (a pipeline's notify step) has its
parent's organisation, and a workflow with neither (Crucible's own, like retention) has
the default organisation's. Policies come from :class:`~crucible.core.targets.orgs.OrgTargetPolicies`.

A :class:`~crucible.core.targets.policy.TargetRefused` that leaves an activity becomes a
non-retryable ``ApplicationError`` of type ``TargetRefused``: sending the same request again
would be refused again, so the run hears at once, and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from crucible.core.runs import DEFAULT_ORG
from crucible.core.targets.orgs import OrgTargetPolicies
from crucible.core.targets.policy import TARGET_REFUSED, TargetPolicy, TargetRefused, refusal_in
from crucible.core.targets.transport import using_policy
from crucible.core.temporal import ORG_KEY

#: Runs whose organisation a worker remembers.
RUN_CACHE_SIZE = 10_000
#: How many parents up a child's organisation is looked for.
MAX_PARENTS = 3


def refused_error(refusal: TargetRefused, attempt: int = 1) -> ApplicationError:
    """What a refused activity fails with: final, naming the target and the rule, and saying
    which attempt was refused (earlier ones may have been sent)."""
    return ApplicationError(
        refusal.summary, {"attempt": attempt, "rule": refusal.rule}, type=TARGET_REFUSED, non_retryable=True
    )


class TargetPolicyInterceptor(Interceptor):
    """Runs each activity under its run's organisation's target policy.

    Args:
        client: the worker's Temporal client, to describe runs.
        policies: where organisations' policies are read.
        exempt: activity names that make no requests to targets and run without a policy (a
            guarded request from one of them is refused): the event log's writes, say, which
            every run makes and which need no lookup.
    """

    def __init__(self, client: Client, policies: OrgTargetPolicies, *, exempt: Iterable[str] = ()) -> None:
        self.client = client
        self.policies = policies
        self.exempt = frozenset(exempt)
        self._orgs: dict[tuple[str, str], asyncio.Future[str]] = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _PolicyInbound(next, self)

    async def policy_for_run(self, workflow_id: str | None, run_id: str | None = None) -> TargetPolicy:
        """The policy of the run ``workflow_id`` belongs to."""
        org = DEFAULT_ORG if not workflow_id else await self.org_of(workflow_id, run_id or "")
        return await self.policies.policy_for(org)

    async def org_of(self, workflow_id: str, run_id: str = "") -> str:
        """The organisation of a run, described once however many of its activities ask at once."""
        key = (workflow_id, run_id)
        found = self._orgs.get(key)
        if found is None:
            found = self._orgs[key] = asyncio.ensure_future(self._describe(workflow_id, run_id))
            while len(self._orgs) > RUN_CACHE_SIZE:
                self._orgs.pop(next(iter(self._orgs)))
        try:
            return await asyncio.shield(found)
        except Exception:
            self._orgs.pop(key, None)  # Temporal did not answer: the next activity asks again
            raise

    async def _describe(self, workflow_id: str, run_id: str) -> str:
        handle = self.client.get_workflow_handle(workflow_id, run_id=run_id or None)
        for _ in range(MAX_PARENTS + 1):
            description = await handle.describe()
            org = description.typed_search_attributes.get(ORG_KEY)
            if org:
                return org
            if description.parent_id is None:
                break
            handle = self.client.get_workflow_handle(description.parent_id, run_id=description.parent_run_id)
        return DEFAULT_ORG


class _PolicyInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, owner: TargetPolicyInterceptor) -> None:
        super().__init__(next)
        self.owner = owner

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type in self.owner.exempt:
            return await self.next.execute_activity(input)
        policy = await self.owner.policy_for_run(info.workflow_id, info.workflow_run_id)
        try:
            with using_policy(policy):
                return await self.next.execute_activity(input)
        except Exception as exc:
            refusal = refusal_in(exc)
            if refusal is None:
                raise
            raise refused_error(refusal, info.attempt) from None
