"""Collection records in the state database: read them, and write a sync's changes in bulk.

Writes are plain executemany statements grouped by kind (one INSERT for every new record of a
batch, one for every value, ...): a row-by-row ORM flush is far too slow for 100,000 devices.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.orm import Session

from kandji_bridge.db.models import MappedDevice, Record, RecordChange, RecordValue
from kandji_bridge.db.state import StateDB
from kandji_bridge.inventory.collections import CollectionInfo
from kandji_bridge.inventory.convert import Value, decode

ACTIVE, REMOVED, ARCHIVED = "active", "removed", "archived"
EXPORT_PAGE = 5_000

_records: Table = Record.__table__  # type: ignore[assignment]
_values: Table = RecordValue.__table__  # type: ignore[assignment]
_history: Table = RecordChange.__table__  # type: ignore[assignment]
_links: Table = MappedDevice.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Stored:
    status: str
    values: dict[int, str]  # field id -> JSON value; an empty field has no entry


@dataclass(frozen=True, slots=True)
class Link:
    record_id: str
    details_check_in: str | None


@dataclass
class Writes:
    """The rows one transaction inserts, updates and deletes, kept by kind for executemany."""

    new_records: list[dict[str, Any]] = field(default_factory=list)
    record_updates: list[dict[str, Any]] = field(default_factory=list)  # rid, st, at
    value_deletes: list[dict[str, Any]] = field(default_factory=list)
    value_updates: list[dict[str, Any]] = field(default_factory=list)  # rid, fid, v, u
    value_inserts: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    link_deletes: list[dict[str, Any]] = field(default_factory=list)
    link_inserts: list[dict[str, Any]] = field(default_factory=list)
    link_updates: list[dict[str, Any]] = field(default_factory=list)  # mid, did, rec, check_in

    def extend(self, other: "Writes") -> None:
        for name, rows in vars(other).items():
            getattr(self, name).extend(rows)

    def rows(self) -> int:
        return sum(len(rows) for rows in vars(self).values())

    def unique_values(self) -> list[tuple[str, int, str]]:
        """(record id, field id, JSON value) of each unique-field value written."""
        inserted = [(r["record_id"], r["field_id"], r["unique_value"]) for r in self.value_inserts]
        updated = [(r["rid"], r["fid"], r["u"]) for r in self.value_updates]
        return [row for row in inserted + updated if row[2] is not None]


def load_links(session: Session, mapping_id: str) -> dict[str, Link]:
    """device id -> the record the mapping filled from it."""
    return {
        device_id: Link(record_id, check_in)
        for device_id, record_id, check_in in session.execute(
            select(_links.c.device_id, _links.c.record_id, _links.c.details_check_in).where(
                _links.c.mapping_id == mapping_id
            )
        )
    }


def load_keys(session: Session, field_id: int) -> dict[str, str]:
    """JSON value -> record id, for a unique field (the identifier's)."""
    return dict(
        session.execute(
            select(_values.c.unique_value, _values.c.record_id).where(
                _values.c.field_id == field_id, _values.c.unique_value.is_not(None)
            )
        ).all()
    )


def load_stored(session: Session, record_ids: list[str], field_ids: list[int]) -> dict[str, Stored]:
    """The status and the `field_ids` values of each record."""
    if not record_ids:
        return {}
    statuses = dict(
        session.execute(
            select(_records.c.id, _records.c.status).where(
                _records.c.id.in_(bindparam("ids", expanding=True))
            ),
            {"ids": record_ids},
        ).all()
    )
    values: dict[str, dict[int, str]] = {record_id: {} for record_id in statuses}
    for record_id, field_id, value in session.execute(
        select(_values.c.record_id, _values.c.field_id, _values.c.value).where(
            _values.c.record_id.in_(bindparam("ids", expanding=True)),
            _values.c.field_id.in_(bindparam("fields", expanding=True)),
        ),
        {"ids": record_ids, "fields": field_ids},
    ):
        values[record_id][field_id] = value
    return {record_id: Stored(status, values[record_id]) for record_id, status in statuses.items()}


def write(session: Session, writes: Writes) -> None:
    """Apply `writes` in the order constraints need: freed unique values and links go first."""
    run = _executemany(session)
    run(insert(_records), writes.new_records)
    run(
        update(_records)
        .where(_records.c.id == bindparam("rid"))
        .values(status=bindparam("st"), updated_at=bindparam("at")),
        writes.record_updates,
    )
    run(
        delete(_values).where(
            and_(_values.c.record_id == bindparam("rid"), _values.c.field_id == bindparam("fid"))
        ),
        writes.value_deletes,
    )
    run(
        update(_values)
        .where(
            and_(_values.c.record_id == bindparam("rid"), _values.c.field_id == bindparam("fid"))
        )
        .values(value=bindparam("v"), unique_value=bindparam("u")),
        writes.value_updates,
    )
    run(insert(_values), writes.value_inserts)
    run(insert(_history), writes.history)
    run(
        delete(_links).where(
            and_(_links.c.mapping_id == bindparam("mid"), _links.c.device_id == bindparam("did"))
        ),
        writes.link_deletes,
    )
    run(insert(_links), writes.link_inserts)
    run(
        update(_links)
        .where(
            and_(_links.c.mapping_id == bindparam("mid"), _links.c.device_id == bindparam("did"))
        )
        .values(record_id=bindparam("rec"), details_check_in=bindparam("check_in")),
        writes.link_updates,
    )


def _executemany(session: Session) -> Any:
    connection = session.connection()

    def run(statement: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            connection.execute(statement, rows)

    return run


def holder(session: Session, field_id: int, value: str, record_id: str | None) -> str | None:
    """The record, other than `record_id`, that holds `value` in a unique field."""
    query = select(_values.c.record_id).where(
        _values.c.field_id == field_id, _values.c.unique_value == value
    )
    if record_id is not None:
        query = query.where(_values.c.record_id != record_id)
    return session.scalar(query)


def iter_records(
    state: StateDB, collection: CollectionInfo, statuses: tuple[str, ...] = (ACTIVE, REMOVED)
) -> Iterator[tuple[str, dict[int, Value]]]:
    """(status, field id -> value) of each record, oldest first, a page per short transaction
    so a large export never holds the database for long."""
    after: tuple[datetime, str] | None = None
    while True:
        with state.session() as session:
            query = (
                select(_records.c.id, _records.c.status, _records.c.created_at)
                .where(_records.c.collection_id == collection.id, _records.c.status.in_(statuses))
                .order_by(_records.c.created_at, _records.c.id)
                .limit(EXPORT_PAGE)
            )
            if after is not None:
                query = query.where(tuple_(_records.c.created_at, _records.c.id) > after)
            page = session.execute(query).all()
            if not page:
                return
            values: dict[str, dict[int, Value]] = {record_id: {} for record_id, _, _ in page}
            for record_id, field_id, value in session.execute(
                select(_values.c.record_id, _values.c.field_id, _values.c.value).where(
                    _values.c.record_id.in_(bindparam("ids", expanding=True))
                ),
                {"ids": list(values)},
            ):
                values[record_id][field_id] = decode(value)
        for record_id, status, _ in page:
            yield status, values[record_id]
        last_id, _, last_created = page[-1]
        after = (last_created, last_id)
