"""Accounts and auth: organisations, teams, users, memberships, API and refresh tokens, team quotas.

Runs keep their ``org_id`` and ``team_id`` text columns ("default"); the dev bootstrap
creates the organisation and team with those ids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tz(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _ref(name: str, target: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.Text(), sa.ForeignKey(target, ondelete="CASCADE"), **kw)  # type: ignore[arg-type]


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("org_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        _tz("created_at"),
    )
    op.create_table(
        "teams",
        sa.Column("team_id", sa.Text(), primary_key=True),
        _ref("org_id", "organisations.org_id", nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        _tz("created_at"),
        sa.UniqueConstraint("org_id", "name", name="uq_teams_org_name"),
    )
    op.create_table(
        "users",
        sa.Column("user_id", sa.Text(), primary_key=True),
        sa.Column("email", sa.Text(), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default="false"),
        _tz("created_at"),
        _tz("last_login_at", nullable=True),
    )
    op.create_table(
        "memberships",
        _ref("user_id", "users.user_id", primary_key=True),
        _ref("team_id", "teams.team_id", primary_key=True),
        sa.Column("role", sa.Text(), nullable=False),
        _tz("created_at"),
        sa.CheckConstraint("role IN ('viewer', 'runner', 'admin')", name="ck_memberships_role"),
    )
    op.create_index("ix_memberships_team", "memberships", ["team_id"])
    op.create_table(
        "api_tokens",
        sa.Column("token_id", sa.Text(), primary_key=True),
        _ref("user_id", "users.user_id", nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),
        sa.Column("scopes", postgresql.JSONB(), nullable=False),
        _ref("team_id", "teams.team_id", nullable=True),
        _tz("created_at"),
        _tz("expires_at", nullable=True),
        _tz("revoked_at", nullable=True),
        _tz("last_used_at", nullable=True),
    )
    op.create_index(
        "ix_api_tokens_user", "api_tokens", ["user_id", sa.text("created_at DESC"), sa.text("token_id DESC")]
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_id", sa.Text(), primary_key=True),
        _ref("user_id", "users.user_id", nullable=False),
        sa.Column("family_id", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False, unique=True),
        _tz("issued_at"),
        _tz("expires_at"),
        _tz("used_at", nullable=True),
        _tz("revoked_at", nullable=True),
    )
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family_id"])
    op.create_table(
        "team_quotas",
        _ref("team_id", "teams.team_id", primary_key=True),
        sa.Column("max_concurrent_runs", sa.Integer(), nullable=True),
        sa.Column("max_runs_per_day", sa.Integer(), nullable=True),
        _tz("updated_at"),
    )


def downgrade() -> None:
    op.drop_table("team_quotas")
    op.drop_table("refresh_tokens")
    op.drop_table("api_tokens")
    op.drop_table("memberships")
    op.drop_table("users")
    op.drop_table("teams")
    op.drop_table("organisations")
