"""Collection records in the state database: read them, and write an import's changes in bulk.

A record's values are one JSON object (`records.data`, keyed by field id); the values of unique
fields are also rows of `record_keys`, whose primary key makes the database refuse duplicates.
What the records table sorts and searches on is written with them (assets/keys.py): a sort
key per field in `record_sort_keys` and the search text in `records.search`. Writes are grouped
by kind into one statement each (COPY on PostgreSQL): a row-by-row ORM flush is far too slow for
100,000 records.
"""

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    Connection,
    Executable,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import TableClause

from kandji_bridge.assets import keys
from kandji_bridge.assets.collections import CollectionInfo, FieldInfo
from kandji_bridge.assets.convert import Value, encode
from kandji_bridge.db.models import (
    CollectionField,
    Record,
    RecordChange,
    RecordKey,
    RecordSortKey,
)
from kandji_bridge.db.state import StateDB

ACTIVE, REMOVED, ARCHIVED = "active", "removed", "archived"
EXPORT_PAGE = 5_000

_records: Table = Record.__table__  # type: ignore[assignment]
_keys: Table = RecordKey.__table__  # type: ignore[assignment]
_history: Table = RecordChange.__table__  # type: ignore[assignment]
_sort_keys: Table = RecordSortKey.__table__  # type: ignore[assignment]
_fields: Table = CollectionField.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Stored:
    status: str
    values: dict[int, Value]  # field id -> value; an empty field has no entry


class KeyClaim(NamedTuple):
    """A unique field's value (JSON) taken by a record."""

    field_id: int
    value: str
    record_id: str


@dataclass
class RecordWrites:
    """What one transaction writes to a collection's records: new records, changed values and
    statuses, with the unique keys, sort keys and change history that go with them.

    `keyed` are the fields that have sort keys (keyed_fields, read in the same transaction);
    `run_id` is the import run the changes are recorded under (None: no run).
    """

    collection: CollectionInfo
    keyed: tuple[FieldInfo, ...]
    run_id: str | None
    now: datetime
    # The rows, by kind, as the statements of write_records take them.
    _new_records: list[dict[str, Any]] = field(default_factory=list)
    _record_updates: list[dict[str, Any]] = field(default_factory=list)
    _sort_key_deletes: list[dict[str, Any]] = field(default_factory=list)
    _sort_key_inserts: list[dict[str, Any]] = field(default_factory=list)
    _key_deletes: list[dict[str, Any]] = field(default_factory=list)
    _key_inserts: list[dict[str, Any]] = field(default_factory=list)  # field_id, value, record_id
    _history: list[dict[str, Any]] = field(default_factory=list)
    _unique: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self._unique = frozenset(f.id for f in self.collection.fields if f.unique)

    def rows(self) -> int:
        return (
            len(self._new_records)
            + len(self._record_updates)
            + len(self._sort_key_deletes)
            + len(self._sort_key_inserts)
            + len(self._key_deletes)
            + len(self._key_inserts)
            + len(self._history)
        )

    @property
    def claims(self) -> list[KeyClaim]:
        """The unique values this transaction takes, to find who holds one it was refused."""
        return [
            KeyClaim(row["field_id"], row["value"], row["record_id"]) for row in self._key_inserts
        ]

    def insert(self, record_id: str, status: str, values: dict[int, Value]) -> None:
        """A new record holding `values` (no empty ones), its unique keys and sort keys."""
        self._new_records.append(
            {
                "id": record_id,
                "collection_id": self.collection.id,
                "status": status,
                "data": encode_data(values),
                "search": keys.search_text(values),
                "created_run_id": self.run_id,
                "created_at": self.now,
                "updated_at": self.now,
            }
        )
        self._key_inserts += [
            {"field_id": field_id, "value": encode(value), "record_id": record_id}
            for field_id, value in values.items()
            if field_id in self._unique
        ]
        self._add_sort_keys(self.keyed, record_id, status, values)

    def update(
        self,
        record_id: str,
        stored: Stored,
        status: str,
        values: dict[int, Value],
        changed: list[FieldInfo],
    ) -> None:
        """A stored record now holding `values` in `status`; `changed` are the fields whose value
        differs from `stored`, in the order their history is written (the status's comes last).
        """
        for changed_field in changed:
            old, new = (
                encode(stored.values.get(changed_field.id)),
                encode(values.get(changed_field.id)),
            )
            if changed_field.id in self._unique:
                if old is not None:
                    self._key_deletes.append({"fid": changed_field.id, "v": old})
                if new is not None:
                    self._key_inserts.append(
                        {"field_id": changed_field.id, "value": new, "record_id": record_id}
                    )
            self._history.append(self._change(record_id, changed_field.id, old, new))
        if status != stored.status:
            self._history.append(
                self._change(record_id, None, encode(stored.status), encode(status))
            )
        self._record_updates.append(
            {
                "rid": record_id,
                "st": status,
                "at": self.now,
                "data": encode_data(values),
                "search": keys.search_text(values),
            }
        )
        # The status is in every key row; a value only in its own field's.
        if status != stored.status:
            moved = self.keyed
        else:
            moved = tuple(f for f in changed if f in self.keyed)
        self._drop_sort_keys(moved, record_id, stored.values)
        self._add_sort_keys(moved, record_id, status, values)

    def set_status(self, record_id: str, stored: Stored, status: str) -> None:
        """A stored record moved to `status` (say, archived), its values as they are."""
        self.update(record_id, stored, status, stored.values, [])

    def _change(
        self, record_id: str, field_id: int | None, old: str | None, new: str | None
    ) -> dict[str, Any]:
        return {
            "record_id": record_id,
            "sync_run_id": self.run_id,
            "field_id": field_id,
            "old_value": old,
            "new_value": new,
            "changed_at": self.now,
        }

    def _add_sort_keys(
        self, fields: tuple[FieldInfo, ...], record_id: str, status: str, values: dict[int, Value]
    ) -> None:
        self._sort_key_inserts += [
            {"field_id": field_id, "key": key, "record_id": record_id, "status": status}
            for field_id, key in keys.field_keys(fields, values).items()
        ]

    def _drop_sort_keys(
        self, fields: tuple[FieldInfo, ...], record_id: str, values: dict[int, Value]
    ) -> None:
        self._sort_key_deletes += [
            {"field_id": field_id, "key": key, "record_id": record_id}
            for field_id, key in keys.field_keys(fields, values).items()
        ]


def new_record_id() -> str:
    """A UUIDv7 (RFC 9562): creation time first, so a large import appends to the indexes keyed
    by record id instead of writing all over them, and exports come out in creation order."""
    random = int.from_bytes(os.urandom(10), "big")
    milliseconds = time.time_ns() // 1_000_000
    rand_a, rand_b = (random >> 62) & 0xFFF, random & ((1 << 62) - 1)  # 12 and 62 bits
    value = milliseconds << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def encode_data(values: dict[int, Value]) -> str:
    return orjson.dumps(values, option=orjson.OPT_NON_STR_KEYS).decode()


def decode_data(data: str) -> dict[int, Value]:
    return {int(field_id): value for field_id, value in orjson.loads(data).items()}


def load_keys(session: Session, field_id: int) -> dict[str, str]:
    """JSON value -> record id, for a unique field (the identifier's)."""
    return dict(
        session.execute(
            select(_keys.c.value, _keys.c.record_id).where(_keys.c.field_id == field_id)
        ).all()
    )


def load_stored(session: Session, record_ids: list[str]) -> dict[str, Stored]:
    if not record_ids:
        return {}
    rows = session.execute(
        select(_records.c.id, _records.c.status, _records.c.data).where(
            _records.c.id.in_(bindparam("ids", expanding=True))
        ),
        {"ids": record_ids},
    )
    return {record_id: Stored(status, decode_data(data)) for record_id, status, data in rows}


def keyed_fields(session: Session, collection: CollectionInfo) -> tuple[FieldInfo, ...]:
    """The collection's fields that have sort keys, which a write must keep current.

    Read with the fields' rows key-share locked on PostgreSQL: a first sort's backfill
    (add_field_sort_keys) locks its field's row for update, so it runs wholly before or after
    this transaction and never misses what this one writes. SQLite runs one writer at a time.
    """
    flags = dict(
        session.execute(
            select(_fields.c.id, _fields.c.has_sort_keys)
            .where(_fields.c.collection_id == collection.id)
            .with_for_update(read=True, key_share=True)
        ).all()
    )
    return tuple(field for field in collection.fields if flags.get(field.id))


def add_field_sort_keys(state: StateDB, collection: CollectionInfo, field: FieldInfo) -> None:
    """Sort keys for every record of the collection in `field`, if it has none yet: the first
    sort on a field pays for them (about a second at 100,000 records), and imports keep them
    current from then on."""
    flag = select(_fields.c.has_sort_keys).where(_fields.c.id == field.id)
    with state.session() as session:
        if session.scalar(flag) is not False:  # without a lock: the usual case
            return
    with state.session() as session:
        if session.scalar(flag.with_for_update()) is not False:
            return
        rows = [
            {
                "field_id": field.id,
                "key": keys.sort_key(orjson.loads(data).get(str(field.id)), field.type),
                "record_id": record_id,
                "status": status,
            }
            for record_id, status, data in session.execute(
                select(_records.c.id, _records.c.status, _records.c.data).where(
                    _records.c.collection_id == collection.id
                )
            )
        ]
        rows.sort(key=lambda row: (row["key"], row["record_id"]))  # appends to the B-tree
        connection = session.connection()
        bulk_insert(connection, _sort_keys, rows)
        connection.execute(
            update(_fields).where(_fields.c.id == field.id).values(has_sort_keys=True)
        )
        if connection.dialect.name == "postgresql":
            # Statistics now rather than when autovacuum comes by: without them the planner
            # takes the new keys for a few hundred rows and sorts instead of walking the index.
            connection.execute(text("ANALYZE record_sort_keys"))


def write_records(session: Session, writes: RecordWrites) -> None:
    """Apply `writes` in the order constraints need: freed unique values go first."""
    connection = session.connection()
    bulk_insert(connection, _records, writes._new_records)
    _execute(
        connection,
        update(_records)
        .where(_records.c.id == bindparam("rid"))
        .values(
            status=bindparam("st"),
            updated_at=bindparam("at"),
            data=bindparam("data"),
            search=bindparam("search"),
        ),
        writes._record_updates,
    )
    _delete_sort_keys(connection, writes._sort_key_deletes)
    bulk_insert(connection, _sort_keys, writes._sort_key_inserts)
    _execute(
        connection,
        delete(_keys).where(
            and_(_keys.c.field_id == bindparam("fid"), _keys.c.value == bindparam("v"))
        ),
        writes._key_deletes,
    )
    bulk_insert(connection, _keys, writes._key_inserts)
    bulk_insert(connection, _history, writes._history)


def _delete_sort_keys(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """By primary key. On PostgreSQL one statement over arrays, each row found through the
    primary key (the LATERAL ... LIMIT 1 keeps the planner from hashing the whole table, which
    it chose otherwise: 330 ms for 4,000 keys, not 60); executemany costs ~20 µs a row. Key
    rows are never updated, only inserted and deleted, so a row's ctid stays its own."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        statement = delete(_sort_keys).where(
            _sort_keys.c.field_id == bindparam("field_id"),
            _sort_keys.c.key == bindparam("key"),
            _sort_keys.c.record_id == bindparam("record_id"),
        )
        connection.execute(statement, rows)
        return
    connection.execute(
        text(
            "DELETE FROM record_sort_keys WHERE ctid = ANY(ARRAY("
            "SELECT found.ctid FROM unnest(CAST(:field_ids AS integer[]), CAST(:keys AS text[]), "
            "CAST(:record_ids AS text[])) AS gone(field_id, key, record_id), "
            "LATERAL (SELECT k.ctid FROM record_sort_keys AS k WHERE k.field_id = gone.field_id "
            'AND k.key = gone.key COLLATE "C" AND k.record_id = gone.record_id LIMIT 1) AS found))'
        ),
        {
            "field_ids": [row["field_id"] for row in rows],
            "keys": [row["key"] for row in rows],
            "record_ids": [row["record_id"] for row in rows],
        },
    )


def _execute(connection: Connection, statement: Executable, rows: list[dict[str, Any]]) -> None:
    if rows:
        connection.execute(statement, rows)


def bulk_insert(
    connection: Connection, table: Table | TableClause, rows: list[dict[str, Any]]
) -> None:
    """executemany on SQLite; COPY on PostgreSQL, where executemany costs ~20 µs a row with
    psycopg and COPY a few (measured for benchmarks/inventory_sync.py)."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    columns = list(rows[0])
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    driver = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row([row[column] for column in columns])
    except connection.dialect.dbapi.IntegrityError as exc:
        # As SQLAlchemy would raise it, so callers handle one kind of refusal.
        raise IntegrityError(sql, None, exc) from exc


def holder(session: Session, field_id: int, value: str) -> str | None:
    """The record that holds `value` (JSON) in a unique field."""
    return session.scalar(
        select(_keys.c.record_id).where(_keys.c.field_id == field_id, _keys.c.value == value)
    )


def iter_records(
    state: StateDB, collection: CollectionInfo, statuses: tuple[str, ...] = (ACTIVE, REMOVED)
) -> Iterator[tuple[str, dict[int, Value]]]:
    """(status, field id -> value) of each record, oldest first, a page per short transaction
    so a large export never holds the database for long."""
    after: tuple[datetime, str] | None = None
    while True:
        with state.session() as session:
            query = (
                select(_records.c.id, _records.c.status, _records.c.data, _records.c.created_at)
                .where(_records.c.collection_id == collection.id, _records.c.status.in_(statuses))
                .order_by(_records.c.created_at, _records.c.id)
                .limit(EXPORT_PAGE)
            )
            if after is not None:
                query = query.where(tuple_(_records.c.created_at, _records.c.id) > after)
            page = session.execute(query).all()
        if not page:
            return
        for _, status, data, _ in page:
            yield status, decode_data(data)
        last_id, _, _, last_created = page[-1]
        after = (last_created, last_id)
