"""Collections: list and show them, create, edit and delete one, browse, export, and show a
record with where it came from (the mapping and Kandji device that filled it, and the audit
events about the device).

The CLI's `collection` commands, the Collections pages and the REST API call these.
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from kandji_bridge.assets import browse, collections, editing, records
from kandji_bridge.assets.browse import RecordDetail, RecordPage
from kandji_bridge.assets.collections import CollectionInfo, FieldSpec, InvalidCollection
from kandji_bridge.assets.convert import FieldType, Value, cell, text
from kandji_bridge.assets.editing import CollectionEdit
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.inventory import links, mappings, runs
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import LogStore, sql_string

EXPORT_FORMATS = ("csv", "json")
EXPORT_CHUNK = 65536  # CSV bytes buffered before they are handed on
DEVICE_NAME = "device_name"  # the Kandji field that names a device
EVENTS_LIMIT = 100  # audit events on a record's timeline, newest first
TYPES = ", ".join(field_type.value for field_type in FieldType)


@dataclass(frozen=True)
class CollectionOverview:
    collection: CollectionInfo
    records: dict[str, int]  # status ("active", "removed", "archived") -> count
    mappings: list[str]  # the mappings that import into it


@dataclass(frozen=True)
class Export:
    collection: CollectionInfo
    filename: str
    media_type: str
    chunks: Iterator[bytes]  # read inside short transactions, a page at a time


@dataclass(frozen=True)
class DeviceEvent:
    id: str  # the stored event's (its page: /logs/events/ID)
    kandji_event_id: str
    event_time: str  # UTC, 'YYYY-MM-DD HH:MM:SS'
    event_name: str
    action: str
    actor_type: str
    actor: str  # who: email, name or id


@dataclass(frozen=True)
class Timeline:
    events: list[DeviceEvent]
    error: str = ""  # the log store could not be read


@dataclass(frozen=True)
class Change:
    field: str  # the field's label, or browse.STATUS_LABEL
    old: Value
    new: Value
    sync_run_id: str | None
    mapping: str | None  # the mapping whose sync made the change, if it still exists
    changed_at: datetime


@dataclass(frozen=True)
class ImportedRecord:
    record: RecordDetail
    device_id: str | None  # the Kandji device the record was imported from
    mapping: str | None  # the mapping that imported it
    history: list[Change]  # newest first
    timeline: Timeline | None  # None: not imported from a device
    title: str = ""  # the device's name, else its identifier: what the record is called
    subtitle: str = ""  # the identifier, as "LABEL: value", shown under the title


def list_collections(state: StateDB) -> list[CollectionOverview]:
    names = mappings.mapping_names(state)
    return [
        CollectionOverview(
            summary.collection, summary.records, names.get(summary.collection.id, [])
        )
        for summary in collections.list_collections(state)
    ]


def show_collection(state: StateDB, name: str) -> CollectionOverview:
    """The fields, records by status, and the mappings that fill it (`collection show`)."""
    summary = collections.summarize(state, name)
    names = mappings.mapping_names(state).get(summary.collection.id, [])
    return CollectionOverview(summary.collection, summary.records, names)


def field_spec(label: str, type_name: str, unique: bool = False) -> FieldSpec:
    """A field as a form or a JSON body gives it: its type by name, any case."""
    try:
        field_type = FieldType(type_name.strip().lower())
    except ValueError:
        raise InvalidCollection(
            f"The field {label!r} has the type {type_name!r}; use one of {TYPES}."
        ) from None
    return FieldSpec(label, field_type, unique)


def create_collection(state: StateDB, name: str, fields: list[FieldSpec]) -> CollectionOverview:
    created = collections.create_collection(state, name, fields)
    return CollectionOverview(created, {}, [])


def update_collection(state: StateDB, name: str, edit: CollectionEdit) -> CollectionOverview:
    """Rename the collection, add fields, remove fields or let a unique field's values repeat.
    An edit that would break a mapping names the mapping and what to do, and changes nothing."""
    collection = collections.get_collection(state, name)
    users = [
        summary.mapping
        for summary in mappings.list_mappings(state)
        if summary.mapping.collection.id == collection.id
    ]
    for label in edit.remove_fields:
        field = collection.field(label)
        for mapping in users:
            for mapped in mapping.fields:
                if mapped.field.id != field.id:
                    continue
                if mapped.is_identifier:
                    raise BridgeError(
                        f"The field {field.label!r} is the Unique Identifier of mapping "
                        f"{mapping.name!r}; give that mapping another identifier, or remove it, "
                        "before removing the field. Nothing was changed."
                    )
                raise BridgeError(
                    f"Mapping {mapping.name!r} fills the field {field.label!r} from Kandji's "
                    f"{mapped.kandji.key}; remove that field from the mapping first. Nothing "
                    "was changed."
                )
    for label in edit.not_unique:
        field = collection.field(label)
        for mapping in users:
            if mapping.identifier.field.id == field.id:
                raise BridgeError(
                    f"The field {field.label!r} is the Unique Identifier of mapping "
                    f"{mapping.name!r}, which needs it unique; give that mapping another "
                    "identifier first. Nothing was changed."
                )
    edited = editing.edit_collection(state, name, edit)
    return show_collection(state, edited.name)


def remove_collection(state: StateDB, name: str) -> CollectionOverview:
    """Delete the collection with its records and their history; refused while a mapping
    imports into it. Returns what was deleted."""
    overview = show_collection(state, name)
    if overview.mappings:
        names = ", ".join(repr(mapping) for mapping in overview.mappings)
        which = "mapping" if len(overview.mappings) == 1 else "mappings"
        raise BridgeError(
            f"Collection {overview.collection.name!r} is filled by {which} {names}; remove "
            f"the {which} first, then delete the collection. Nothing was deleted."
        )
    editing.delete_collection(state, overview.collection.name)
    return overview


def browse_records(
    state: StateDB,
    name: str,
    *,
    search: str = "",
    sort_field: str | None = None,
    descending: bool = False,
    status: str = "",
    page: int = 1,
    page_size: int = browse.DEFAULT_PAGE_SIZE,
) -> RecordPage:
    """One page of the collection's records (see browse.page_records)."""
    return browse.page_records(
        state,
        collections.get_collection(state, name),
        search=search,
        sort_field=sort_field,
        descending=descending,
        status=status,
        page=page,
        page_size=page_size,
    )


def export_collection(
    state: StateDB,
    name: str,
    format: str,
    archived: bool = False,
    *,
    search: str = "",
    status: str | None = None,
    sort_field: str | None = None,
    descending: bool = False,
) -> Export:
    """The records as CSV (opens in a spreadsheet: UTF-8 with a BOM, datetimes in UTC as
    'YYYY-MM-DD HH:MM:SS', booleans TRUE/FALSE) or a JSON array keyed by field labels.

    With a search, a status or a sort (the records table's filters), only the records the
    table shows, in its order; else every record (archived ones too if `archived`)."""
    collection = collections.get_collection(state, name)
    if format not in EXPORT_FORMATS:
        raise browse.InvalidBrowse(f"Unknown export format {format!r}; use csv or json.")
    if search.strip() or status is not None or sort_field:
        rows = _browsed_values(
            state,
            name,
            search=search,
            status=status or "",
            sort_field=sort_field,
            descending=descending,
        )
    else:
        statuses = (records.ACTIVE, records.REMOVED) + ((records.ARCHIVED,) if archived else ())
        rows = (values for _, values in records.iter_records(state, collection, statuses))
    if format == "json":
        return Export(
            collection, f"{collection.name}.json", "application/json", _json(collection, rows)
        )
    return Export(
        collection, f"{collection.name}.csv", "text/csv; charset=utf-8", _csv(collection, rows)
    )


def _browsed_values(state: StateDB, name: str, **query: Any) -> Iterator[dict[int, Value]]:
    """Every record the records table shows for `query`, page after page, in its order. The
    first page is read now, so a bad filter is refused before an export starts streaming."""
    size = browse.MAX_PAGE_SIZE
    first = browse_records(state, name, page=1, page_size=size, **query)

    def values() -> Iterator[dict[int, Value]]:
        page = first
        while True:
            yield from (row.values for row in page.rows)
            if page.page >= page.pages:
                return
            page = browse_records(state, name, page=page.page + 1, page_size=size, **query)

    return values()


def show_record(state: StateDB, store: LogStore, name: str, record_id: str) -> ImportedRecord:
    """A record with its change history, the device and mapping it came from, and the audit
    events that targeted the device."""
    collection = collections.get_collection(state, name)
    record = browse.get_record(state, collection, record_id)
    origin = links.record_device(state, record.id)
    by_run = runs.run_mappings(state, {e.run_id for e in record.history if e.run_id})
    history = [
        Change(
            entry.field,
            entry.old,
            entry.new,
            entry.run_id,
            by_run.get(entry.run_id) if entry.run_id else None,
            entry.changed_at,
        )
        for entry in record.history
    ]
    device_id, mapping = origin if origin else (None, None)
    timeline = device_events(store, device_id) if device_id else None
    title, subtitle = _record_title(state, record, mapping)
    return ImportedRecord(record, device_id, mapping, history, timeline, title, subtitle)


def _record_title(state: StateDB, record: RecordDetail, mapping: str | None) -> tuple[str, str]:
    """The record's name (the field its mapping fills with the device's name) and its
    identifier (the mapping's identifier field, else the collection's first unique field)."""
    name_label = id_label = None
    if mapping is not None:
        try:
            info = mappings.get_mapping(state, mapping)
        except BridgeError:
            info = None
        if info is not None:
            id_label = info.identifier.field.label
            name_label = next(
                (m.field.label for m in info.fields if m.kandji.key == DEVICE_NAME), None
            )
    if id_label is None:
        unique = [f.label for f in record.collection.fields if f.unique]
        id_label = unique[0] if unique else None
    name = text(record.values.get(name_label)) if name_label else ""
    identifier = text(record.values.get(id_label)) if id_label else ""
    if name and identifier:
        return name, f"{id_label}: {identifier}"
    return name or identifier or "Record", ""


def device_events(store: LogStore, device_id: str, limit: int = EVENTS_LIMIT) -> Timeline:
    """The audit events whose target is this device, newest first."""
    # The device id reaches SQL through sql_string only.
    sql = (
        "SELECT id, kandjiEventId, toString(eventTime), eventName, action, actorType, "  # noqa: S608
        f"actor FROM {LOGS_TABLE} WHERE targetId = {sql_string(device_id)} "
        # occurredAt (Kandji's time, to the microsecond) orders events within one second.
        f"ORDER BY eventTime DESC, occurredAt DESC, id DESC LIMIT {int(limit)}"
    )
    try:
        result = store.query(sql, read_only=True)
    except BridgeError as exc:
        return Timeline([], f"The audit events could not be read: {exc}")
    events = []
    for event_id, kandji_id, when, name, action, actor_type, actor in result.rows:
        actor = actor if isinstance(actor, dict) else {}
        who = actor.get("email") or actor.get("name") or actor.get("username") or actor.get("id")
        events.append(DeviceEvent(event_id, kandji_id, when, name, action, actor_type, who or ""))
    return Timeline(events)


def _csv(collection: CollectionInfo, rows: Iterator[dict[int, Value]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([field.label for field in collection.fields])
    yield b"\xef\xbb\xbf"  # the BOM: spreadsheets then read the file as UTF-8
    for values in rows:
        writer.writerow([cell(values.get(field.id), field.type) for field in collection.fields])
        if buffer.tell() > EXPORT_CHUNK:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _json(collection: CollectionInfo, rows: Iterator[dict[int, Value]]) -> Iterator[bytes]:
    yield b"["
    for number, values in enumerate(rows):
        item = {field.label: values.get(field.id) for field in collection.fields}
        yield (b",\n" if number else b"\n") + orjson.dumps(item)
    yield b"\n]\n"
