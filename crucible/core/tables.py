"""Database tables. Alembic migrations in ``crucible/migrations`` create them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from crucible.core.runs import RunStatus


def _tz(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index))


class RunBase(SQLModel):
    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    kind: str = Field(sa_column=Column(Text, nullable=False))
    org_id: str = Field(sa_column=Column(Text, nullable=False))
    team_id: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    state: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    verdict: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    summary: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    created_at: datetime = _tz()
    updated_at: datetime = _tz()
    closed_at: datetime | None = _tz(nullable=True)
    last_seq: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    fence: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class Run(RunBase, table=True):
    """One row per run; the workflow keeps it current with each batch of events."""

    @property
    def closed(self) -> bool:
        """The run has ended, and its log has its terminal event, at ``last_seq``."""
        return self.status != RunStatus.RUNNING.value

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_created", text("created_at DESC"), text("run_id DESC")),
        Index("ix_runs_kind_status", "kind", "status"),
        Index("ix_runs_team_created", "team_id", text("created_at DESC"), text("run_id DESC")),
    )


class RunEventRow(SQLModel, table=True):
    """One entry of a run's event log; (run_id, seq) is the idempotency key."""

    __tablename__ = "run_events"

    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    type: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = _tz()
    data: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    fence: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


def _jsonb(*, nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSONB, nullable=nullable))


class SecretRow(SQLModel, table=True):
    """A secret (a run's target headers, a credential), AES-GCM encrypted; workflows carry its id."""

    __tablename__ = "secrets"

    secret_id: str = Field(sa_column=Column(Text, primary_key=True))
    key_id: str = Field(sa_column=Column(Text, nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _tz()


class QaRunRow(SQLModel, table=True):
    """What a QA run was asked to do (without secret values), its spec and its evaluation."""

    __tablename__ = "qa_runs"

    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    request: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    spec: dict[str, Any] | None = _jsonb(nullable=True)
    spec_version: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    operations: list[dict[str, Any]] | None = _jsonb(nullable=True)
    evaluation: dict[str, Any] | None = _jsonb(nullable=True)
    created_at: datetime = _tz()


class QaResultRow(SQLModel, table=True):
    """One scenario of one operation and, once it ran, its result; passing ones are kept too."""

    __tablename__ = "qa_results"

    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    operation: str = Field(sa_column=Column(Text, primary_key=True))
    idx: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    scenario: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    result: dict[str, Any] | None = _jsonb(nullable=True)
    passed: bool | None = Field(default=None, sa_column=Column(Boolean, nullable=True))


class PipelineRow(SQLModel, table=True):
    """A pipeline definition: its steps, with secret values replaced by references."""

    __tablename__ = "pipelines"
    __table_args__ = (Index("ix_pipelines_created", text("created_at DESC"), text("pipeline_id DESC")),)

    pipeline_id: str = Field(sa_column=Column(Text, primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    org_id: str = Field(sa_column=Column(Text, nullable=False))
    team_id: str = Field(sa_column=Column(Text, nullable=False))
    steps: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = _tz()


class ChaosExperimentRow(SQLModel, table=True):
    """A chaos experiment as created: its checked definition (no secrets), one per run."""

    __tablename__ = "chaos_experiments"

    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    spec: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_by: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = _tz()


class SloMeasurementRow(SQLModel, table=True):
    """One SLO's value at one sample of one phase (preflight, baseline, chaos, recovery)."""

    __tablename__ = "slo_measurements"

    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    phase: str = Field(sa_column=Column(Text, primary_key=True))
    sample: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    slo_name: str = Field(sa_column=Column(Text, primary_key=True))
    target: str = Field(sa_column=Column(Text, nullable=False))
    actual_value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    met: bool = Field(sa_column=Column(Boolean, nullable=False))
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    measured_at: datetime = _tz()


class ChaosResultRow(SQLModel, table=True):
    """An SLO's baseline, chaos and recovery values for one experiment run."""

    __tablename__ = "chaos_results"

    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    metric_name: str = Field(sa_column=Column(Text, primary_key=True))
    target: str = Field(sa_column=Column(Text, nullable=False))
    unit: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    baseline_value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    chaos_value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    recovery_value: float | None = Field(default=None, sa_column=Column(Float, nullable=True))
    chaos_met: bool = Field(sa_column=Column(Boolean, nullable=False))
    measured_at: datetime = _tz()


# Accounts and auth (seed 004 §5-6, seed 001's USERS, TEAMS, API_TOKENS, TEAM_QUOTAS).
# Ids are text: organisations and teams have readable ids ("default", as runs carry),
# users and tokens random ones.


class OrganisationRow(SQLModel, table=True):
    __tablename__ = "organisations"

    org_id: str = Field(sa_column=Column(Text, primary_key=True))
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _tz()


class TeamRow(SQLModel, table=True):
    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("org_id", "name", name="uq_teams_org_name"),)

    team_id: str = Field(sa_column=Column(Text, primary_key=True))
    org_id: str = Field(
        sa_column=Column(Text, ForeignKey("organisations.org_id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _tz()


class UserRow(SQLModel, table=True):
    """A person who logs in; ``email`` is stored lower-cased and is unique."""

    __tablename__ = "users"

    user_id: str = Field(sa_column=Column(Text, primary_key=True))
    email: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    password_hash: str = Field(sa_column=Column(Text, nullable=False))
    disabled: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="false"))
    created_at: datetime = _tz()
    last_login_at: datetime | None = _tz(nullable=True)


class MembershipRow(SQLModel, table=True):
    """A user's role in a team: viewer, runner or admin."""

    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint("role IN ('viewer', 'runner', 'admin')", name="ck_memberships_role"),
        Index("ix_memberships_team", "team_id"),
    )

    user_id: str = Field(
        sa_column=Column(Text, ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True)
    )
    team_id: str = Field(
        sa_column=Column(Text, ForeignKey("teams.team_id", ondelete="CASCADE"), primary_key=True)
    )
    role: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = _tz()


class ApiTokenRow(SQLModel, table=True):
    """A personal API token (for CI): only its sha256 is kept; scoped, expiring, revocable."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id", text("created_at DESC"), text("token_id DESC")),)

    token_id: str = Field(sa_column=Column(Text, primary_key=True))
    user_id: str = Field(
        sa_column=Column(Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False)
    )
    name: str = Field(sa_column=Column(Text, nullable=False))
    token_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    scopes: list[str] = Field(sa_column=Column(JSONB, nullable=False))
    team_id: str | None = Field(
        default=None,
        sa_column=Column(Text, ForeignKey("teams.team_id", ondelete="CASCADE"), nullable=True),
    )
    created_at: datetime = _tz()
    expires_at: datetime | None = _tz(nullable=True)
    revoked_at: datetime | None = _tz(nullable=True)
    last_used_at: datetime | None = _tz(nullable=True)


class RefreshTokenRow(SQLModel, table=True):
    """One refresh token (opaque, kept as its sha256) of a family that one login started."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_family", "family_id"),)

    token_id: str = Field(sa_column=Column(Text, primary_key=True))
    user_id: str = Field(
        sa_column=Column(Text, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False)
    )
    family_id: str = Field(sa_column=Column(Text, nullable=False))
    token_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    issued_at: datetime = _tz()
    expires_at: datetime = _tz()
    used_at: datetime | None = _tz(nullable=True)
    revoked_at: datetime | None = _tz(nullable=True)


class RunAdmissionRow(SQLModel, table=True):
    """A run the API admitted under its team's quotas (crucible.core.quotas)."""

    __tablename__ = "run_admissions"
    __table_args__ = (Index("ix_run_admissions_team", "team_id", text("admitted_at DESC")),)

    run_id: str = Field(sa_column=Column(Text, primary_key=True))
    team_id: str = Field(sa_column=Column(Text, nullable=False))
    admitted_at: datetime = _tz()


class TeamQuotaRow(SQLModel, table=True):
    """A team's run quotas; None is no limit."""

    __tablename__ = "team_quotas"

    team_id: str = Field(
        sa_column=Column(Text, ForeignKey("teams.team_id", ondelete="CASCADE"), primary_key=True)
    )
    max_concurrent_runs: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    max_runs_per_day: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    updated_at: datetime = _tz()


class OrgTargetPolicyRow(SQLModel, table=True):
    """An organisation's own target lists (crucible.core.targets.orgs), comma-separated like the
    settings; they replace the installation's."""

    __tablename__ = "org_target_policies"

    org_id: str = Field(
        sa_column=Column(Text, ForeignKey("organisations.org_id", ondelete="CASCADE"), primary_key=True)
    )
    hosts: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    networks: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    ports: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    include_defaults: bool = Field(
        default=True, sa_column=Column(Boolean, nullable=False, server_default="true")
    )
    updated_at: datetime = _tz()
