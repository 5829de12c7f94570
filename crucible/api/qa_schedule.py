"""QA runs on a schedule: the ``qa`` schedule target.

The request (header values sealed as a secret) and any inline spec are stored once, when
the schedule is created, under a template id. Each run the schedule starts copies them as
its own request row when it fetches its spec, so its report reads like any other run's.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from crucible.api.deps import get_qa_store, get_secrets, get_settings, get_target_policies
from crucible.api.qa_models import QaRunCreate
from crucible.api.routes.qa import store_qa_request
from crucible.api.schedule_targets import ScheduledStart, register_schedule_target
from crucible.core.auth import Membership
from crucible.core.errors import FieldError, InvalidRequestError
from crucible.workflows.qa_package import KIND, QaPackageRunWorkflow


class QaScheduleTarget(BaseModel):
    """A QA package run, as ``POST /api/v1/qa-runs`` takes it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["qa"]
    run: QaRunCreate = Field(description="The body of `POST /api/v1/qa-runs`.")


def _template_id() -> str:
    return f"template-{KIND}-{uuid.uuid4().hex}"


async def build_qa(body: QaScheduleTarget, request: Request, team: Membership) -> ScheduledStart:
    settings = get_settings(request)
    template = _template_id()
    try:
        arg = await store_qa_request(
            body.run,
            key=template,
            team=team,
            store=get_qa_store(request),
            secrets=get_secrets(request),
            settings=settings,
            policies=get_target_policies(request),
        )
    except InvalidRequestError as exc:  # its fields are under target.run here
        moved = [FieldError(("body", "target", "run", *e.loc[1:]), e.msg, e.type) for e in exc.errors]
        raise InvalidRequestError(moved) from exc
    run = body.run
    summary: dict[str, Any] = {
        "kind": KIND,
        "base_url": run.base_url,
        "spec_url": run.spec_url,
        "inline_spec": run.spec is not None,
        "generator": run.generator,
        "header_names": sorted(run.headers),
        "template": template,
    }
    return ScheduledStart(
        kind=KIND,
        workflow=QaPackageRunWorkflow.run,
        arg=dataclasses.replace(arg, template=template),
        task_queue=settings.task_queue,
        summary=summary,
    )


async def forget_qa(summary: dict[str, Any], request: Request) -> None:
    """Drop the stored request; runs that copied it keep theirs (and the secret they share)."""
    if template := summary.get("template"):
        await get_qa_store(request).delete(str(template))


register_schedule_target(KIND, QaScheduleTarget, build_qa, forget=forget_qa)
