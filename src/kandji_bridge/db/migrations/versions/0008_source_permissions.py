"""What each source's token may do, as checked when it was saved or verified
(`sources.permissions`: permission keys, comma-separated; NULL until first checked), and a name
to show for a source (`sources.display_name`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("permissions", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("display_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("display_name")
        batch_op.drop_column("permissions")
