"""API token scopes (`api_tokens.scope`; the tokens made before are "admin", as they could do
everything) and where a job lease's holder runs (`job_leases.host`, `pid`, `pid_started`), so a
process on the same host can take over a dead holder's job at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="admin")
        )
    with op.batch_alter_table("job_leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("pid_started", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_leases", schema=None) as batch_op:
        batch_op.drop_column("pid_started")
        batch_op.drop_column("pid")
        batch_op.drop_column("host")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("scope")
