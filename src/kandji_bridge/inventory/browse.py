"""Browse a collection's records: one page of a search, sorted by any field, and one record with
its change history (the web UI's records table and record page, and the REST API).

Values live in one JSON object per record (`records.data`), so sorting and searching extract
them in SQL: `json_extract` on SQLite, `->>` on PostgreSQL. A page is found in two steps: the
sort runs over (key, id) pairs only, then the page's few rows are read whole, so the sort never
carries 100,000 JSON documents.
"""

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    TextClause,
    and_,
    bindparam,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import UnaryExpression

from kandji_bridge.db.models import (
    CollectionField,
    MappedDevice,
    Mapping,
    Record,
    RecordChange,
    SyncRun,
)
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.inventory.collections import CollectionInfo, FieldInfo
from kandji_bridge.inventory.convert import FieldType, Value, decode
from kandji_bridge.inventory.records import ACTIVE, ARCHIVED, REMOVED, decode_data

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
STATUS_LABEL = "Record status"  # the history's name for a status change (as sync.py writes it)


_INDEX_EXISTS = {
    "postgresql": "SELECT 1 FROM pg_indexes WHERE schemaname = current_schema() "
    "AND indexname = :name",
    "sqlite": "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = :name",
}
_known_indexes: set[tuple[str, str]] = set()  # (database, index) known to exist
log = logging.getLogger(__name__)


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
    sync_run_id: str | None
    mapping: str | None  # the mapping whose sync made the change, if it still exists
    changed_at: datetime


@dataclass(frozen=True)
class RecordDetail:
    id: str
    collection: CollectionInfo
    status: str
    values: dict[str, Value]  # label -> value, in the collection's field order; None: empty
    created_at: datetime
    updated_at: datetime
    device_id: str | None  # the Kandji device the record was imported from
    mapping: str | None  # the mapping that imported it
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
        _ensure_sort_index(state, collection, field)
    with state.session() as session:
        dialect = session.get_bind().dialect.name
        statuses = ", ".join(f"'{name}'" for name in STATUS_FILTERS[status])
        where: list[ColumnElement] = [
            # Literals, not parameters: SQLite only uses a partial index (the sort indexes are)
            # for a query that names the same value.
            text(f"records.collection_id = '{_checked_id(collection)}'"),
            text(f"records.status IN ({statuses})"),
        ]
        if search:
            where.append(_search(dialect, search))
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
        order = []
        if field is not None:
            key = literal_column(_sort_key(dialect, field))
            order.append(_nulls(dialect, key.desc() if down else key.asc(), down))
        # Record ids are UUIDv7: their order is the order the records were created in.
        order.append(Record.id.desc() if down else Record.id.asc())
        ids = list(
            session.scalars(
                select(Record.id)
                .where(*where)
                .order_by(*order)
                # Literals: with parameters, PostgreSQL's reused (generic) plan cannot tell a
                # page of 50 from most of the table, and sorts everything instead of walking
                # the sort index.
                .limit(bindparam("page_limit", count, literal_execute=True))
                .offset(bindparam("page_offset", offset, literal_execute=True))
            )
        )
        if backwards:
            ids.reverse()
        rows = {row.id: row for row in _rows(session, ids)}
    return RecordPage(
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
    """A record of the collection with its values by label, its device and its change history."""
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
        link = session.execute(
            select(MappedDevice.device_id, Mapping.name)
            .join(Mapping, Mapping.id == MappedDevice.mapping_id)
            .where(MappedDevice.record_id == record.id)
            .order_by(Mapping.name)
            .limit(1)
        ).first()
        history_total = (
            session.scalar(
                select(func.count())
                .select_from(RecordChange)
                .where(RecordChange.record_id == record.id)
            )
            or 0
        )
        history = [
            HistoryEntry(label or STATUS_LABEL, decode(old), decode(new), run_id, mapping, at)
            for label, old, new, run_id, mapping, at in session.execute(
                select(
                    CollectionField.label,
                    RecordChange.old_value,
                    RecordChange.new_value,
                    RecordChange.sync_run_id,
                    Mapping.name,
                    RecordChange.changed_at,
                )
                .outerjoin(CollectionField, CollectionField.id == RecordChange.field_id)
                .outerjoin(SyncRun, SyncRun.id == RecordChange.sync_run_id)
                .outerjoin(Mapping, Mapping.id == SyncRun.mapping_id)
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
            device_id=link[0] if link else None,
            mapping=link[1] if link else None,
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


def _sort_key(dialect: str, field: FieldInfo) -> str:
    """The SQL a field's records are sorted on, typed: numbers as numbers, datetimes by the
    second (ISO text with a varying fraction does not sort right below that), text ignoring case
    and by code point on both backends. The same text makes the field's sort index."""
    if dialect == "postgresql":
        value = f"(CAST(data AS jsonb) ->> '{int(field.id)}')"
        return {
            FieldType.NUMBER: f"CAST({value} AS numeric)",
            FieldType.BOOLEAN: f"CAST({value} AS boolean)",
            FieldType.DATETIME: f"left({value}, 19)",
            FieldType.DATE: value,
        }.get(field.type, f'(lower({value}) COLLATE "C")')
    value = f"json_extract(data, '$.\"{int(field.id)}\"')"
    return {
        FieldType.NUMBER: value,  # json_extract gives numbers and booleans (0, 1) typed
        FieldType.BOOLEAN: value,
        FieldType.DATETIME: f"substr({value}, 1, 19)",
        FieldType.DATE: value,
    }.get(field.type, f"{value} COLLATE NOCASE")


def _ensure_sort_index(state: StateDB, collection: CollectionInfo, field: FieldInfo) -> None:
    """An index on the field's sort key for this collection's records, made the first time the
    field is sorted on: pages then walk the index in order instead of extracting and sorting the
    key of every record (on SQLite the index covers the whole query). Only fields someone sorts
    on get one, so a sync does not pay for indexes nobody uses. If it cannot be made (another
    process is making it, no privilege), pages are still right, only slower."""
    name = f"ix_records_sort_{int(field.id)}"
    known = (state.engine.url.render_as_string(), name)
    if known in _known_indexes:
        return
    try:
        with state.session() as session:
            connection = session.connection()
            dialect = connection.dialect.name
            if connection.scalar(text(_INDEX_EXISTS[dialect]), {"name": name}) is None:
                nulls = " NULLS FIRST" if dialect == "postgresql" else ""  # as SQLite orders them
                connection.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS {name} ON records "
                        f"({_sort_key(dialect, field)}{nulls}, id, status) "
                        f"WHERE collection_id = '{_checked_id(collection)}'"
                    )
                )
    except DBAPIError as exc:
        log.warning("Could not make the sort index %s: %s", name, exc.orig)
        return
    _known_indexes.add(known)


def _nulls(dialect: str, key: UnaryExpression, descending: bool) -> ColumnElement:
    """Empty values sort as the smallest, as SQLite orders NULL; PostgreSQL is told so."""
    if dialect != "postgresql":
        return key
    return key.nulls_last() if descending else key.nulls_first()


def _checked_id(collection: CollectionInfo) -> str:
    """The collection's id, for SQL text: a partial index is only used by a query that names
    the same literal. Ids are UUIDs; anything else is refused rather than quoted."""
    return str(uuid.UUID(collection.id))


def _search(dialect: str, term: str) -> ColumnElement:
    """Records with `term` inside one of their values, case-insensitively.

    A LIKE over the whole JSON text is cheap and drops most records; what it keeps is checked
    value by value, so a term that only matches a field id ("1") or JSON punctuation does not
    match every record.
    """
    escaped = orjson.dumps(term).decode()[1:-1]  # as the term appears inside the JSON text
    coarse = f"%{_like_escape(escaped)}%"
    if dialect == "postgresql":
        exact = text(
            "EXISTS (SELECT 1 FROM jsonb_each_text(CAST(records.data AS jsonb)) AS each_value "
            "WHERE each_value.value ILIKE :search_value ESCAPE '\\')"
        )
        return and_(Record.data.ilike(coarse, escape="\\"), _exact(exact, term))
    # SQLite's LIKE ignores ASCII case by itself. json_each gives booleans as 1 and 0: they are
    # matched by their type's name, true or false.
    exact = text(
        "EXISTS (SELECT 1 FROM json_each(records.data) AS each_value "
        "WHERE each_value.value LIKE :search_value ESCAPE '\\' "
        "OR (each_value.type IN ('true', 'false') "
        "AND each_value.type LIKE :search_value ESCAPE '\\'))"
    )
    return and_(Record.data.like(coarse, escape="\\"), _exact(exact, term))


def _exact(clause: TextClause, term: str) -> ColumnElement:
    return clause.bindparams(search_value=f"%{_like_escape(term)}%")  # type: ignore[return-value]


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
