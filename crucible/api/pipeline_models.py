"""Request and response models of the pipeline routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from crucible.api.batch_models import BatchJobCreate
from crucible.api.field_rules import HTTP_URL, matches, published
from crucible.core.errors import FieldError, ForbiddenError, InvalidRequestError
from crucible.core.paths import PathPolicy
from crucible.core.pipelines.models import OPERATORS, PRESENCE
from crucible.core.tables import PipelineRow

WebhookUrl = Annotated[
    str, AfterValidator(matches(HTTP_URL, "webhook_url must be an absolute http(s) URL")), published(HTTP_URL)
]
#: The first step is not a validate step: that checks the previous step's result.
#: (Not prefixItems on the list itself: those would exempt the first step from ``items``.)
_FIRST_NOT_VALIDATE: JsonDict = {
    "not": {"prefixItems": [{"required": ["type"], "properties": {"type": {"const": "validate"}}}]}
}

Operator = Literal["==", "!=", "<", "<=", ">", ">=", "exists", "missing"]
assert set(Operator.__args__) == {*OPERATORS, *PRESENCE}  # type: ignore[attr-defined]


class AssertionModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(
        min_length=1,
        max_length=300,
        description="Dotted path into the previous step's result: `summary.flagged`.",
    )
    op: Operator = Field(description="A comparison (a list compares by its length), `exists` or `missing`.")
    value: Any = Field(None, description="What the found value is compared with.")


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=120, description="Shown in events; defaults to the type.")


class BatchStep(_Step):
    type: Literal["batch"]
    job: BatchJobCreate


class ValidateStep(_Step):
    type: Literal["validate"]
    assertions: list[AssertionModel] = Field(min_length=1, max_length=100)


class NotifyStep(_Step):
    type: Literal["notify"]
    webhook_url: WebhookUrl = Field(
        max_length=2048,
        description="An incoming webhook (Slack's format). Stored encrypted: it holds a token.",
    )
    text: str | None = Field(None, max_length=3000, description="The message's headline.")


Step = Annotated[BatchStep | ValidateStep | NotifyStep, Field(discriminator="type")]


class PipelineCreate(BaseModel):
    """A pipeline: steps run in order, each as a child workflow; a failed step stops it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=120)
    steps: list[Step] = Field(min_length=1, max_length=20, json_schema_extra=_FIRST_NOT_VALIDATE)

    @model_validator(mode="after")
    def _order(self) -> PipelineCreate:
        if self.steps[0].type == "validate":
            raise ValueError("steps: a validate step checks the previous step's result; it cannot come first")
        return self

    def errors(self) -> list[FieldError]:
        """Its batch steps' errors that the model alone cannot see (see ``BatchJobCreate.errors``)."""
        errors: list[FieldError] = []
        for index, step in enumerate(self.steps):
            if isinstance(step, BatchStep):
                errors += step.job.errors("body", "steps", index, "job")
        return errors

    def path_problems(self, paths: PathPolicy) -> list[str]:
        """Input and output paths of its batch steps that batch jobs may not use."""
        return [
            f"steps[{index}].job.{problem}"
            for index, step in enumerate(self.steps)
            if isinstance(step, BatchStep)
            for problem in step.job.path_problems(paths)
        ]

    def check(self, paths: PathPolicy) -> None:
        """422 for its batch steps' options; then 403 for paths batch jobs may not use."""
        if errors := self.errors():
            raise InvalidRequestError(errors)
        if problems := self.path_problems(paths):
            raise ForbiddenError("; ".join(problems))


class PipelineLinks(BaseModel):
    self: str
    runs: str


class PipelinePublic(BaseModel):
    pipeline_id: str = Field(
        description="The definition's id (`pl-…`); its runs' ids start with `pipeline-`."
    )
    name: str
    org_id: str
    team_id: str = Field(description="The team it belongs to; its runs do too.")
    steps: list[dict[str, Any]] = Field(
        description="The steps, with secret values replaced by names or hosts."
    )
    created_at: datetime
    links: PipelineLinks

    @classmethod
    def of(cls, row: PipelineRow, *, api_prefix: str) -> PipelinePublic:
        base = f"{api_prefix}/pipelines/{row.pipeline_id}"
        return cls(
            pipeline_id=row.pipeline_id,
            name=row.name,
            org_id=row.org_id,
            team_id=row.team_id,
            steps=[_public_step(s) for s in row.steps],
            created_at=row.created_at,
            links=PipelineLinks(self=base, runs=f"{base}/runs"),
        )


def _public_step(step: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {"name": step["name"], "type": step["type"]}
    if step.get("batch"):
        shown["job"] = {k: v for k, v in step["batch"].items() if k != "headers_secret"}
    if step["type"] == "validate":
        shown["assertions"] = step["assertions"]
    if step["type"] == "notify":
        shown["webhook_host"] = step["webhook_host"]
        shown["text"] = step["text"]
    return shown


class PipelineList(BaseModel):
    items: list[PipelinePublic]
    next_cursor: str | None


class PipelineRunAccepted(BaseModel):
    run_id: str
    pipeline_id: str
    status: str = "RUNNING"
    links: dict[str, str]
