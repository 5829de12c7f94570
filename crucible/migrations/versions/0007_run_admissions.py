"""Run admissions, which team quotas count, and the runs list by team.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_admissions",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("team_id", sa.Text(), nullable=False),
        sa.Column("admitted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_run_admissions_team", "run_admissions", ["team_id", sa.text("admitted_at DESC")])
    op.create_index(
        "ix_runs_team_created", "runs", ["team_id", sa.text("created_at DESC"), sa.text("run_id DESC")]
    )


def downgrade() -> None:
    op.drop_index("ix_runs_team_created", "runs")
    op.drop_table("run_admissions")
