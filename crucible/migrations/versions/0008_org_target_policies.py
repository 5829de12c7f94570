"""Each organisation's target policy: the hosts, networks and ports its runs may call.

A row replaces the installation's lists (``CRUCIBLE_TARGET_*``); no row: those lists.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "org_target_policies",
        sa.Column(
            "org_id",
            sa.Text(),
            sa.ForeignKey("organisations.org_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("hosts", sa.Text(), nullable=False, server_default=""),
        sa.Column("networks", sa.Text(), nullable=False, server_default=""),
        sa.Column("ports", sa.Text(), nullable=False, server_default=""),
        sa.Column("include_defaults", sa.Boolean(), nullable=False, server_default="true"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("org_target_policies")
