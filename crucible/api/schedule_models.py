"""Request and response models of the schedule routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from crucible.api.field_rules import given
from crucible.api.schedule_targets import validate_target
from crucible.core.config import Settings
from crucible.core.schedules import (
    ScheduleOptions,
    ScheduleView,
    check_cron,
    check_time_zone,
    schedule_id_for,
    schedule_ui_url,
)

#: The names of Temporal's overlap policies (crucible.core.schedules.OVERLAP_POLICIES).
OverlapName = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"]


def _target(kind: str, field: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["kind", field],
        "properties": {"kind": {"const": kind}, field: schema},
        "additionalProperties": False,
    }


#: The schedule targets' body models (schedule_targets.TARGETS), as one schema: the run bodies
#: are the ones their own endpoints take, in the document's components.
_TARGET_SCHEMA = {
    "oneOf": [
        _target("qa", "run", {"$ref": "#/components/schemas/QaRunCreate"}),
        _target("batch", "job", {"$ref": "#/components/schemas/BatchJobCreate"}),
        _target("pipeline", "pipeline_id", {"type": "string", "maxLength": 100}),
    ],
    "examples": [
        {
            "kind": "qa",
            "run": {"spec_url": "http://127.0.0.1:8099/openapi.json", "base_url": "http://127.0.0.1:8099"},
        },
        {"kind": "pipeline", "pipeline_id": "pl-nightly-3f2c1a"},
    ],
}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class ScheduleCreate(BaseModel):
    """A Temporal Schedule that starts a QA run, a batch job or a pipeline."""

    # _one_timing's rule: cron or interval_s, not both.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [given("cron", "string", "interval_s"), given("interval_s", "integer", "cron")]
        },
    )

    name: str = Field(
        min_length=1,
        max_length=200,
        description="Becomes the schedule's id, slugified: `Nightly orders` → `nightly-orders`.",
    )
    target: Annotated[Any, WithJsonSchema(_TARGET_SCHEMA)] = Field(
        description='What each action starts: `{"kind": "qa", "run": {…the body of POST /api/v1/qa-runs…}}`, '
        '`{"kind": "batch", "job": {…}}` or `{"kind": "pipeline", "pipeline_id": "…"}`.'
    )
    cron: str | None = Field(
        None,
        description="A 5-field cron expression or @hourly/@daily/…, read in `time_zone`.",
        examples=["17 3 * * *"],
    )
    interval_s: int | None = Field(None, ge=1, description="Act every this many seconds (instead of `cron`).")
    time_zone: str = Field("UTC", description="IANA time zone for `cron`, e.g. Europe/Paris.")
    overlap: OverlapName = Field(
        "skip", description="What happens when an action comes while a run is going."
    )
    pause_on_failure: bool = Field(False, description="Pause the schedule when a run it started fails.")
    paused: bool = Field(False, description="Create the schedule paused.")
    note: str | None = Field(None, max_length=1000, description="Shown with the schedule's state.")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        schedule_id_for(name)
        return name

    @field_validator("target")
    @classmethod
    def _target(cls, target: Any) -> Any:
        return validate_target(target)

    @field_validator("cron")
    @classmethod
    def _cron(cls, cron: str | None) -> str | None:
        return None if cron is None else check_cron(cron)

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, time_zone: str) -> str:
        return check_time_zone(time_zone)

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleCreate:
        if (self.cron is None) == (self.interval_s is None):
            raise ValueError("give either cron or interval_s, not both and not neither")
        return self

    @property
    def schedule_id(self) -> str:
        return schedule_id_for(self.name)

    def options(self) -> ScheduleOptions:
        return ScheduleOptions(
            cron=self.cron,
            interval_s=self.interval_s,
            time_zone=self.time_zone,
            overlap=self.overlap,
            pause_on_failure=self.pause_on_failure,
            paused=self.paused,
            note=self.note,
        )


class ScheduleNote(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=1000, description="Why; shown with the schedule's state.")


class ScheduleTrigger(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap: OverlapName | None = Field(
        None, description="Overrides the schedule's overlap policy, this once."
    )


class ScheduleBackfill(BaseModel):
    """Take the actions the schedule would have taken over a past (or future) period, now."""

    model_config = ConfigDict(extra="forbid")

    start: datetime = Field(description="ISO 8601; without an offset, UTC.")
    end: datetime = Field(description="ISO 8601, after `start`.")
    overlap: OverlapName | None = Field(
        None,
        description="Default: the schedule's own; under `skip` only the first of overlapping runs starts.",
    )

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and _utc(end) <= _utc(start):
            raise ValueError("end must be after start")
        return end


class ScheduledRunPublic(BaseModel):
    run_id: str
    scheduled_at: datetime
    started_at: datetime
    link: str


class ScheduleLinks(BaseModel):
    self: str
    pause: str
    unpause: str
    trigger: str
    backfill: str
    temporal_ui: str


class SchedulePublic(BaseModel):
    schedule_id: str = Field(description="The Temporal Schedule id; the same in `temporal schedule list`.")
    org_id: str
    team_id: str = Field(description="The team it belongs to; its runs do too.")
    kind: str | None = Field(description="The kind of run it starts.")
    target: dict[str, Any] = Field(description="What it starts, without secret values.")
    cron: str | None
    interval_s: int | None
    time_zone: str | None
    overlap: str | None = Field(description="Absent from lists.")
    pause_on_failure: bool | None = Field(description="Absent from lists.")
    paused: bool
    note: str | None
    next_action_times: list[datetime]
    recent_runs: list[ScheduledRunPublic] = Field(description="Runs it started, newest first.")
    running: list[str] = Field(description="Ids of its runs still going (absent from lists).")
    actions_taken: int | None
    created_at: datetime | None
    updated_at: datetime | None
    temporal_ui_url: str
    links: ScheduleLinks

    @classmethod
    def of(cls, view: ScheduleView, *, api_prefix: str, settings: Settings) -> SchedulePublic:
        base = f"{api_prefix}/schedules/{view.schedule_id}"
        ui = schedule_ui_url(settings, view.schedule_id)
        return cls(
            schedule_id=view.schedule_id,
            org_id=view.org_id,
            team_id=view.team_id,
            kind=view.kind,
            target=view.target,
            cron=view.cron,
            interval_s=view.interval_s,
            time_zone=view.time_zone,
            overlap=view.overlap,
            pause_on_failure=view.pause_on_failure,
            paused=view.paused,
            note=view.note,
            next_action_times=view.next_action_times,
            recent_runs=[
                ScheduledRunPublic(
                    run_id=action.run_id,
                    scheduled_at=action.scheduled_at,
                    started_at=action.started_at,
                    link=f"{api_prefix}/runs/{action.run_id}",
                )
                for action in view.recent_actions
            ],
            running=view.running,
            actions_taken=view.actions_taken,
            created_at=view.created_at,
            updated_at=view.updated_at,
            temporal_ui_url=ui,
            links=ScheduleLinks(
                self=base,
                pause=f"{base}/pause",
                unpause=f"{base}/unpause",
                trigger=f"{base}/trigger",
                backfill=f"{base}/backfill",
                temporal_ui=ui,
            ),
        )


class ScheduleList(BaseModel):
    items: list[SchedulePublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class ScheduleActionAccepted(BaseModel):
    schedule_id: str
    detail: str
    actions: int | None = Field(None, description="For a backfill: about how many runs it starts.")
