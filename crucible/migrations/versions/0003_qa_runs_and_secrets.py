"""QA runs, their scenarios and results, and encrypted secrets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("secret_id", sa.Text(), primary_key=True),
        sa.Column("key_id", sa.Text(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "qa_runs",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("request", postgresql.JSONB(), nullable=False),
        sa.Column("spec", postgresql.JSONB(), nullable=True),
        sa.Column("spec_version", sa.Text(), nullable=True),
        sa.Column("operations", postgresql.JSONB(), nullable=True),
        sa.Column("evaluation", postgresql.JSONB(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "qa_results",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("operation", sa.Text(), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("scenario", postgresql.JSONB(), nullable=False),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("qa_results")
    op.drop_table("qa_runs")
    op.drop_table("secrets")
