"""Which detections are enabled, in the state DB (`detection_switches`) rather than a file of
one home, so several `serve` processes on one state DB agree.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "detection_switches",
        sa.Column("detection", sa.String(length=128), nullable=False),
        sa.Column("notify", sa.Text(), nullable=False),
        sa.Column("schedule", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("detection", name=op.f("pk_detection_switches")),
    )


def downgrade() -> None:
    op.drop_table("detection_switches")
