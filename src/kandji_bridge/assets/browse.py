"""Browse a collection's records: one page of a search, sorted by any field, and one record with
its change history (the web UI's records table and record page, and the REST API).

Pages and counts come from indexed columns written with each record (assets/keys.py):
a field's order is a walk along `record_sort_keys` (field, key, record) that carries the
record's status too, creation order a walk along records (collection, id, status), and a search
one substring test per record on `records.search`. Only the page's rows are read whole.
"""

import math
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, Table, bindparam, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from kandji_bridge.assets import keys, records
from kandji_bridge.assets.collections import CollectionInfo, FieldInfo
from kandji_bridge.assets.convert import Value, decode
from kandji_bridge.assets.records import ACTIVE, ARCHIVED, REMOVED, decode_data
from kandji_bridge.db.models import (
    CollectionField,
    Record,
    RecordChange,
    RecordSortKey,
)
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound

# The status filter: "" shows what an export shows (active and removed records).
STATUS_FILTERS: dict[str, tuple[str, ...]] = {
    "": (ACTIVE, REMOVED),
    ACTIVE: (ACTIVE,),
    REMOVED: (REMOVED,),
    ARCHIVED: (ARCHIVED,),
    "all": (ACTIVE, REMOVED, ARCHIVED),
}
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_SEARCH_LENGTH = 200
HISTORY_LIMIT = 500  # a record page shows the newest changes; the count says how many in all
STATUS_LABEL = "Record status"  # the history's name for a status change (no field id)


_SORT_KEYS: Table = RecordSortKey.__table__  # type: ignore[assignment]
WALK_BATCH = 5_000  # sort keys read at a time while looking for a search's page


class InvalidBrowse(BridgeError):
    """A records query that cannot run: an unknown sort field, status, page or page size."""


@dataclass(frozen=True)
class RecordRow:
    id: str
    status: str
    values: dict[int, Value]  # field id -> value; an empty field has no entry
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class RecordPage:
    collection: CollectionInfo
    rows: list[RecordRow]
    total: int  # records that match the search and status, on every page
    page: int  # 1-based; a page past the end gives the last page
    page_size: int
    search: str
    sort_field: FieldInfo | None  # None: creation order
    descending: bool
    status: str  # a key of STATUS_FILTERS

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


@dataclass(frozen=True)
class HistoryEntry:
    field: str  # the field's label, or STATUS_LABEL
    old: Value
    new: Value
    run_id: str | None  # the import run that made the change
    changed_at: datetime


@dataclass(frozen=True)
class RecordDetail:
    id: str
    collection: CollectionInfo
    status: str
    values: dict[str, Value]  # label -> value, in the collection's field order; None: empty
    created_at: datetime
    updated_at: datetime
    history: list[HistoryEntry]  # newest first, at most HISTORY_LIMIT
    history_total: int


def page_records(
    state: StateDB,
    collection: CollectionInfo,
    *,
    search: str = "",
    sort_field: str | None = None,
    descending: bool = False,
    status: str = "",
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> RecordPage:
    """One page of the collection's records that hold `search` in a value (case-insensitive),
    sorted by the field labelled `sort_field` (typed: numbers as numbers, datetimes as times;
    empty values count as the smallest), then by creation, so the order is stable across pages."""
    search = search.strip()
    if len(search) > MAX_SEARCH_LENGTH:
        raise InvalidBrowse(f"The search is {len(search)} characters; use at most 200.")
    if status not in STATUS_FILTERS:
        shown = ", ".join(repr(name) for name in STATUS_FILTERS if name)
        raise InvalidBrowse(f"Unknown status {status!r}; use one of {shown}, or none.")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidBrowse(f"The page size is {page_size}; use 1 to {MAX_PAGE_SIZE}.")
    if page < 1:
        raise InvalidBrowse(f"The page is {page}; pages are numbered from 1.")
    field = _sort_field(collection, sort_field)
    if field is not None:
        records.add_field_sort_keys(state, collection, field)
    with state.session() as session:
        dialect = session.get_bind().dialect.name
        statuses = ", ".join(f"'{name}'" for name in STATUS_FILTERS[status])
        where: list[ColumnElement] = [
            # Literals, not parameters: PostgreSQL's reused (generic) plan cannot tell a
            # collection of 100,000 records from one of ten.
            text(f"records.collection_id = '{_checked_id(collection)}'"),
            text(f"records.status IN ({statuses})"),
        ]
        matching: list[str] | None = None
        if search:
            # One pass over the collection's search text gives the count and the page's
            # candidates both; sorting the few that match is the sort keys' job.
            where.append(_contains(dialect, keys.search_term(search)))
            matching = sorted(session.scalars(select(Record.id).where(*where)))
            total = len(matching)
        else:
            total = session.scalar(select(func.count()).select_from(Record).where(*where)) or 0
        pages = max(1, math.ceil(total / page_size))
        page = min(page, pages)
        offset = (page - 1) * page_size
        count = max(0, min(page_size, total - offset))
        # Past the middle, read the other way round: the last page costs what the first does.
        backwards = offset > total // 2
        if backwards:
            offset = total - offset - count
        down = descending != backwards
        if field is None and matching is not None:
            # Record ids are UUIDv7: their order is the order the records were created in.
            ids = (matching[::-1] if down else matching)[offset : offset + count]
        elif field is None:
            ids = _page(
                session,
                select(Record.id).where(*where).order_by(_direction(Record.id, down)),
                offset,
                count,
            )
        elif matching is not None:
            ids = _walk(session, _sorted(field, statuses, down), set(matching), offset, count)
        else:
            ids = _page(session, _sorted(field, statuses, down), offset, count)
        if backwards:
            ids.reverse()
        rows = {row.id: row for row in _rows(session, ids)}
    return RecordPage(
        collection=collection,
        rows=[rows[record_id] for record_id in ids if record_id in rows],
        total=total,
        page=page,
        page_size=page_size,
        search=search,
        sort_field=field,
        descending=descending,
        status=status,
    )


def get_record(state: StateDB, collection: CollectionInfo, record_id: str) -> RecordDetail:
    """A record of the collection with its values by label and its change history."""
    with state.session() as session:
        record = session.scalar(
            select(Record).where(Record.id == record_id, Record.collection_id == collection.id)
        )
        if record is None:
            raise NotFound(
                f"Collection {collection.name} has no record {record_id!r}; "
                "it may have been deleted with its collection, or the link is mistyped."
            )
        values = decode_data(record.data)
        history_total = (
            session.scalar(
                select(func.count())
                .select_from(RecordChange)
                .where(RecordChange.record_id == record.id)
            )
            or 0
        )
        history = [
            HistoryEntry(label or STATUS_LABEL, decode(old), decode(new), run_id, at)
            for label, old, new, run_id, at in session.execute(
                select(
                    CollectionField.label,
                    RecordChange.old_value,
                    RecordChange.new_value,
                    RecordChange.sync_run_id,
                    RecordChange.changed_at,
                )
                .outerjoin(CollectionField, CollectionField.id == RecordChange.field_id)
                .where(RecordChange.record_id == record.id)
                .order_by(RecordChange.changed_at.desc(), RecordChange.id.desc())
                .limit(HISTORY_LIMIT)
            )
        ]
        return RecordDetail(
            id=record.id,
            collection=collection,
            status=record.status,
            values={field.label: values.get(field.id) for field in collection.fields},
            created_at=record.created_at,
            updated_at=record.updated_at,
            history=history,
            history_total=history_total,
        )


def _sort_field(collection: CollectionInfo, label: str | None) -> FieldInfo | None:
    if not label or not label.strip():
        return None
    try:
        return collection.field(label)
    except NotFound as exc:
        raise InvalidBrowse(f"Cannot sort by {label.strip()!r}: {exc}") from None


def _sorted(field: FieldInfo, statuses: str, descending: bool) -> Select:
    """The records of the statuses, by the field's sort key then by creation: a walk along the
    sort keys' primary key that reads nothing else (the status is in the index too)."""
    return (
        select(_SORT_KEYS.c.record_id)
        .where(
            text(f"record_sort_keys.field_id = {int(field.id)}"),
            text(f"record_sort_keys.status IN ({statuses})"),
        )
        .order_by(
            _direction(_SORT_KEYS.c.key, descending), _direction(_SORT_KEYS.c.record_id, descending)
        )
    )


def _page(session: Session, query: Select, offset: int, count: int) -> list[str]:
    return list(
        session.scalars(
            # Literals: with parameters, PostgreSQL's reused (generic) plan cannot tell a page
            # of 50 from most of the table, and sorts everything instead of walking the index.
            query.limit(bindparam("page_limit", count, literal_execute=True)).offset(
                bindparam("page_offset", offset, literal_execute=True)
            )
        )
    )


def _walk(
    session: Session, query: Select, matching: set[str], offset: int, count: int
) -> list[str]:
    """The page of the `matching` records in the query's order: its ids are read in order
    (streamed, a batch at a time) until the page is full. Planners join the two sides row by
    row, one index lookup per sort key (~200 ms at 100,000 records); a set costs ~0.1 µs."""
    ids: list[str] = []
    if not count:
        return ids
    seen = 0
    rows = session.execute(query.execution_options(stream_results=True, yield_per=WALK_BATCH))
    for record_id in rows.scalars():
        if record_id not in matching:
            continue
        if seen >= offset:
            ids.append(record_id)
            if len(ids) == count:
                break
        seen += 1
    rows.close()
    return ids


def _direction(column: ColumnElement, descending: bool) -> UnaryExpression:
    return column.desc() if descending else column.asc()


def _checked_id(collection: CollectionInfo) -> str:
    """The collection's id, for SQL text. Ids are UUIDs; anything else is refused rather than
    quoted."""
    return str(uuid.UUID(collection.id))


def _contains(dialect: str, term: str) -> ColumnElement:
    """Records with `term` (as keys.search_term gives it) inside one of their values: a
    substring of the search text, which separates values with a character no term holds."""
    position = func.strpos if dialect == "postgresql" else func.instr
    return position(Record.search, term) > 0


def _rows(session: Session, ids: list[str]) -> list[RecordRow]:
    if not ids:
        return []
    query: Select = select(
        Record.id, Record.status, Record.data, Record.created_at, Record.updated_at
    ).where(Record.id.in_(ids))
    return [
        RecordRow(record_id, status, decode_data(data), created, updated)
        for record_id, status, data, created, updated in session.execute(query)
    ]
