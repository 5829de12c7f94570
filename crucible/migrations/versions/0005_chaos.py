"""Chaos experiments, their SLO measurements and results (seed 001's ER diagram).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chaos_experiments",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("spec", postgresql.JSONB(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "slo_measurements",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("phase", sa.Text(), primary_key=True),
        sa.Column("sample", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("slo_name", sa.Text(), primary_key=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("actual_value", sa.Float(), nullable=True),
        sa.Column("met", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "chaos_results",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("metric_name", sa.Text(), primary_key=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False, server_default=""),
        sa.Column("baseline_value", sa.Float(), nullable=True),
        sa.Column("chaos_value", sa.Float(), nullable=True),
        sa.Column("recovery_value", sa.Float(), nullable=True),
        sa.Column("chaos_met", sa.Boolean(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("chaos_results")
    op.drop_table("slo_measurements")
    op.drop_table("chaos_experiments")
