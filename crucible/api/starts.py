"""How the API starts a run: admitted under its team's quotas, then started in Temporal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy

from crucible.api.deps import RequestSecrets, SecretsDep
from crucible.core.quotas import QuotaStore
from crucible.core.runs import new_run_id
from crucible.core.temporal import start_run


class Owner(Protocol):
    """What a run belongs to: a caller's team membership, a pipeline, the run it resumes."""

    @property
    def org_id(self) -> str: ...

    @property
    def team_id(self) -> str: ...


class RunStarter:
    def __init__(
        self, temporal: Client, quotas: QuotaStore, task_queue: str, secrets: RequestSecrets
    ) -> None:
        self.temporal = temporal
        self.quotas = quotas
        self.task_queue = task_queue
        self.secrets = secrets

    async def start(
        self,
        workflow_run: Any,
        arg: Any,
        *,
        kind: str,
        owner: Owner,
        run_id: str | None = None,
        id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        undo: Callable[[], Awaitable[None]] | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Start a run of ``owner``'s team; 429 (QuotaExceededError) when the team is at a quota.

        A run that does not start takes with it the secrets its request sealed, and whatever
        else the request stored for it, which ``undo`` removes.
        """
        run_id = run_id or new_run_id(kind)
        try:
            async with self.quotas.admit(run_id, owner.team_id):
                return await start_run(
                    self.temporal,
                    workflow_run,
                    arg,
                    kind=kind,
                    task_queue=self.task_queue,
                    org_id=owner.org_id,
                    team_id=owner.team_id,
                    run_id=run_id,
                    id_reuse_policy=id_reuse_policy,
                )
        except BaseException:
            await self.secrets.forget_sealed()
            if undo is not None:
                await undo()
            raise


def get_starter(request: Request, secrets: SecretsDep) -> RunStarter:
    state = request.app.state
    return RunStarter(state.temporal, state.quotas, state.settings.task_queue, secrets)


StarterDep = Annotated[RunStarter, Depends(get_starter)]
