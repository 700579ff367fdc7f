"""Device import: collections and their fields, records and their unique keys, record history,
mappings, the devices each mapping imported, sync runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_collections_name")),
    )
    op.create_table(
        "collection_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("is_unique", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_fields_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_fields")),
        sa.UniqueConstraint(
            "collection_id", "label", name=op.f("uq_collection_fields_collection_id_label")
        ),
    )
    with op.batch_alter_table("collection_fields", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_collection_fields_collection_id"), ["collection_id"], unique=False
        )

    op.create_table(
        "mappings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=36), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("collection_id", sa.String(length=36), nullable=False),
        sa.Column("on_removed", sa.String(length=16), nullable=False),
        sa.Column("schedule_minutes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_mappings_collection_id_collections"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_mappings_source_id_sources"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mappings")),
        sa.UniqueConstraint("name", name=op.f("uq_mappings_name")),
    )
    with op.batch_alter_table("mappings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mappings_collection_id"), ["collection_id"], unique=False
        )

    op.create_table(
        "mapping_fields",
        sa.Column("mapping_id", sa.String(length=36), nullable=False),
        sa.Column("field_id", sa.Integer(), nullable=False),
        sa.Column("kandji_field", sa.String(length=64), nullable=False),
        sa.Column("is_identifier", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["field_id"],
            ["collection_fields.id"],
            name=op.f("fk_mapping_fields_field_id_collection_fields"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mapping_id"],
            ["mappings.id"],
            name=op.f("fk_mapping_fields_mapping_id_mappings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mapping_id", "field_id", name=op.f("pk_mapping_fields")),
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("mapping_id", sa.String(length=36), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("vanished", sa.Integer(), nullable=False),
        sa.Column("api_requests", sa.Integer(), nullable=False),
        sa.Column("details_requests", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mapping_id"],
            ["mappings.id"],
            name=op.f("fk_sync_runs_mapping_id_mappings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sync_runs_mapping_id"), ["mapping_id"], unique=False)

    op.create_table(
        "records",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("collection_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created_run_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_records_collection_id_collections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_records_created_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_records")),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_records_collection_id"), ["collection_id"], unique=False
        )

    op.create_table(
        "mapped_devices",
        sa.Column("mapping_id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("details_check_in", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["mapping_id"],
            ["mappings.id"],
            name=op.f("fk_mapped_devices_mapping_id_mappings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
            name=op.f("fk_mapped_devices_record_id_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mapping_id", "device_id", name=op.f("pk_mapped_devices")),
        sa.UniqueConstraint(
            "mapping_id", "record_id", name=op.f("uq_mapped_devices_mapping_id_record_id")
        ),
    )
    with op.batch_alter_table("mapped_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mapped_devices_record_id"), ["record_id"], unique=False
        )

    op.create_table(
        "record_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("sync_run_id", sa.String(length=36), nullable=True),
        sa.Column("field_id", sa.Integer(), nullable=True),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["field_id"],
            ["collection_fields.id"],
            name=op.f("fk_record_history_field_id_collection_fields"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
            name=op.f("fk_record_history_record_id_records"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sync_run_id"],
            ["sync_runs.id"],
            name=op.f("fk_record_history_sync_run_id_sync_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_history")),
    )
    with op.batch_alter_table("record_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_history_record_id"), ["record_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_record_history_sync_run_id"), ["sync_run_id"], unique=False
        )

    op.create_table(
        "record_keys",
        sa.Column("field_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["field_id"],
            ["collection_fields.id"],
            name=op.f("fk_record_keys_field_id_collection_fields"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["records.id"],
            name=op.f("fk_record_keys_record_id_records"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("field_id", "value", name=op.f("pk_record_keys")),
    )
    with op.batch_alter_table("record_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_keys_record_id"), ["record_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("record_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_keys_record_id"))

    op.drop_table("record_keys")
    with op.batch_alter_table("record_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_history_sync_run_id"))
        batch_op.drop_index(batch_op.f("ix_record_history_record_id"))

    op.drop_table("record_history")
    with op.batch_alter_table("mapped_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mapped_devices_record_id"))

    op.drop_table("mapped_devices")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_records_collection_id"))

    op.drop_table("records")
    with op.batch_alter_table("sync_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_runs_mapping_id"))

    op.drop_table("sync_runs")
    op.drop_table("mapping_fields")
    with op.batch_alter_table("mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mappings_collection_id"))

    op.drop_table("mappings")
    with op.batch_alter_table("collection_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_fields_collection_id"))

    op.drop_table("collection_fields")
    op.drop_table("collections")
