"""The records table's sort keys and search text: `record_sort_keys` with
`collection_fields.has_sort_keys`, `records.search`, records indexed by (collection, id,
status). The sort indexes pages made on first use (`ix_records_sort_<field id>`) give way to
sort keys for the same fields; the search text is filled for every stored record.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

from kandji_bridge.assets import keys
from kandji_bridge.assets.collections import FieldInfo
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.assets.records import bulk_insert

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5_000
_LAZY_SORT_INDEXES = {
    "postgresql": "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
    "AND indexname LIKE 'ix\\_records\\_sort\\_%'",
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'index' "
    "AND name LIKE 'ix\\_records\\_sort\\_%' ESCAPE '\\'",
}


def upgrade() -> None:
    connection = op.get_bind()
    sorted_fields = []
    for (name,) in connection.execute(sa.text(_LAZY_SORT_INDEXES[connection.dialect.name])).all():
        op.drop_index(name, table_name="records")
        sorted_fields.append(int(name.rsplit("_", 1)[1]))
    op.create_table(
        "record_sort_keys",
        sa.Column("field_id", sa.Integer(), nullable=False),
        sa.Column(
            "key", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"), nullable=False
        ),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint(
            "field_id",
            "key",
            "record_id",
            name=op.f("pk_record_sort_keys"),
            postgresql_include=["status"],
        ),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("collection_fields", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("has_sort_keys", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("search", sa.Text(), nullable=False, server_default=""))
        batch_op.drop_index(batch_op.f("ix_records_collection_id"))
        batch_op.create_index(
            "ix_records_collection_id_id_status", ["collection_id", "id", "status"], unique=False
        )
    _fill(connection, sorted_fields)


def downgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_collection_id_id_status")
        batch_op.create_index(
            batch_op.f("ix_records_collection_id"), ["collection_id"], unique=False
        )
        batch_op.drop_column("search")
    with op.batch_alter_table("collection_fields", schema=None) as batch_op:
        batch_op.drop_column("has_sort_keys")
    op.drop_table("record_sort_keys")


def _fill(connection: sa.Connection, sorted_fields: list[int]) -> None:
    """The search text of every stored record and the sort keys of the fields that had a sort
    index, a batch of records at a time in id order."""
    fields: dict[str, list[FieldInfo]] = {}
    for field_id, collection_id, label, field_type in connection.execute(
        sa.text("SELECT id, collection_id, label, type FROM collection_fields ORDER BY position")
    ):
        if field_id in sorted_fields:
            fields.setdefault(collection_id, []).append(
                FieldInfo(field_id, label, FieldType(field_type), False)
            )
    if sorted_fields:
        mark = sa.text("UPDATE collection_fields SET has_sort_keys = :yes WHERE id IN :ids")
        connection.execute(
            mark.bindparams(sa.bindparam("ids", expanding=True)),
            {"yes": True, "ids": sorted_fields},
        )
    sort_keys = sa.table(
        "record_sort_keys",
        sa.column("field_id"),
        sa.column("key"),
        sa.column("record_id"),
        sa.column("status"),
    )
    update = sa.text("UPDATE records SET search = :search WHERE id = :record_id")
    after = ""
    while True:
        batch = connection.execute(
            sa.text(
                "SELECT id, collection_id, status, data FROM records WHERE id > :after "
                "ORDER BY id LIMIT :batch"
            ),
            {"after": after, "batch": BATCH},
        ).all()
        if not batch:
            return
        searches, rows = [], []
        for record_id, collection_id, status, data in batch:
            values = {int(field_id): value for field_id, value in orjson.loads(data).items()}
            searches.append({"record_id": record_id, "search": keys.search_text(values)})
            collection_fields = tuple(fields.get(collection_id, ()))
            rows += [
                {"field_id": field_id, "key": key, "record_id": record_id, "status": status}
                for field_id, key in keys.field_keys(collection_fields, values).items()
            ]
        connection.execute(update, searches)
        bulk_insert(connection, sort_keys, rows)
        after = batch[-1][0]
