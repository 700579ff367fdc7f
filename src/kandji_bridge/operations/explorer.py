"""The logs explorer: one page of matching events with its histogram and filter values, and one
event with the asset records its device target became. The queries themselves are in
`logs.search`; a front end that needs one of them alone calls it there.

Rows are shown as an analyst reads them: the source by its name (several tenants are normal; a
source removed since keeps its events, shown as REMOVED_SOURCE), the actor as a person or a token
(`logs.actors`) and what a `view` event showed.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from kandji_bridge import source_registry
from kandji_bridge.assets import browse, convert
from kandji_bridge.db.models import Collection, MappedDevice, Mapping
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import NotFound
from kandji_bridge.inventory.mappings import MappingInfo, get_mapping
from kandji_bridge.logs import actors
from kandji_bridge.logs import search as logsearch
from kandji_bridge.logs.search import EventSummary, Histogram, SearchPage, SearchQuery
from kandji_bridge.logs.store import LogStore, sql_string

REMOVED_SOURCE = "removed source"
# The Kandji fields (inventory.fields keys) that say which device a record is.
SERIAL_KEY, DEVICE_NAME_KEY = "serial_number", "device_name"


@dataclass(frozen=True)
class AssetLink:
    """An asset record a mapping made from a Kandji device, in one collection, with the device's
    serial and name as the record holds them (empty when the mapping does not import them)."""

    collection: str
    mapping: str
    record_id: str
    serial: str = ""
    device_name: str = ""

    @property
    def url(self) -> str:
        return f"/collections/{quote(self.collection, safe='')}/records/{quote(self.record_id)}"


@dataclass(frozen=True)
class EventRow:
    """One explorer row: the event's summary, its source's name and who did it, named."""

    event: EventSummary
    source: str  # the source's name, or REMOVED_SOURCE
    source_removed: bool
    actor: actors.ActorName  # kind UNKNOWN: no name known, `display` is the event's own
    viewed: str | None  # what a `view` event showed, in words
    device: AssetLink | None = None  # a device target's record in the inventory (the first)


@dataclass(frozen=True)
class EventsFound:
    page: SearchPage
    rows: list[EventRow]


@dataclass(frozen=True)
class Exploration:
    """What the explorer shows for a search: a page of events, the events per time bucket over
    the range (a text over a long range: its newest buckets), and the values each filter select
    offers."""

    page: SearchPage
    rows: list[EventRow]
    histogram: Histogram
    facets: dict[str, list[str]]
    sources: list[tuple[str, str]]  # (source id, its name) with events in the range, by name


def explore_logs(
    store: LogStore,
    state: StateDB,
    query: SearchQuery,
    *,
    limit: int,
    offset: int,
    count_all: bool = False,
    user: str = "",
) -> Exploration:
    """One explorer page; SearchError with one sentence for a search the store cannot run.

    The histogram of a text search counts the newest buckets a second allows, unless `count_all`:
    then every bucket, as a query of `user`'s (QueryBusy past the caps).
    """
    found = search_events(store, state, query, limit=limit, offset=offset)
    names = source_names(state)
    in_range = logsearch.source_ids(store, query)
    return Exploration(
        page=found.page,
        rows=found.rows,
        histogram=(
            logsearch.Histogram(
                logsearch.bucket_seconds(query.start, query.end),
                logsearch.histogram(store, query, user=user),
            )
            if count_all
            else logsearch.newest_histogram(store, query)
        ),
        facets=logsearch.facets(store, query),
        sources=sorted(
            ((source_id, names.get(source_id, REMOVED_SOURCE)) for source_id in in_range),
            key=lambda item: (item[1] == REMOVED_SOURCE, item[1].lower(), item[0]),
        ),
    )


def search_events(
    store: LogStore,
    state: StateDB,
    query: SearchQuery,
    *,
    limit: int,
    offset: int = 0,
    cursor: str | None = None,
) -> EventsFound:
    """Matching events, newest first, each with its source and actor named."""
    page = logsearch.search(store, query, limit, offset, cursor)
    names = source_names(state)
    people = actor_names(store, state, page.rows)
    devices = device_records(
        state, [row.target_id for row in page.rows if row.target_type == "device"]
    )
    rows = [
        EventRow(
            event=row,
            source=names.get(row.source_id, REMOVED_SOURCE),
            source_removed=row.source_id not in names,
            actor=people.get(row.actor_id) or actors.ActorName(row.actor, actors.UNKNOWN),
            viewed=actors.what_was_viewed(row.action, row.target_type, row.target_component),
            device=(devices.get(row.target_id) or [None])[0]
            if row.target_type == "device"
            else None,
        )
        for row in page.rows
    ]
    return EventsFound(page=page, rows=rows)


def source_names(state: StateDB) -> dict[str, str]:
    """Source id -> name, for the sources the registry still holds."""
    return {info.id: info.name for info in source_registry.list_sources(state)}


def actor_names(
    store: LogStore, state: StateDB, events: list[EventSummary]
) -> dict[str, actors.ActorName]:
    """The named actors of these events (people and labelled tokens); an id missing here has no
    known name, and the row keeps what the event itself says (an email, a name or the id)."""
    ids = [row.actor_id for row in events if row.actor_id]
    if not ids:
        return {}
    tokens = token_labels(store, [r.actor_id for r in events if r.actor_type == "api_token"])
    names = actors.resolve(state, ids, tokens)
    return {actor_id: name for actor_id, name in names.items() if name.kind != actors.UNKNOWN}


@dataclass(frozen=True)
class EventView:
    """Every column of one stored event, the asset records of its device target, and the event
    as an analyst reads it: its source and actor named, what it showed, why names are missing."""

    columns: dict[str, Any]
    assets: list[AssetLink]
    source: str = REMOVED_SOURCE
    source_removed: bool = True
    actor: actors.ActorName | None = None  # None: the event has no actor id (Kandji itself)
    viewed: str | None = None
    admins_denied: bool = False  # the source's token may not list admins: people are unnamed


def view_event(store: LogStore, state: StateDB, event_id: str) -> EventView:
    """One event by its row id (NotFound when no stored event has it)."""
    event = logsearch.get_event(store, event_id)
    device_id = str(event.get("targetId", "")) if event.get("targetType") == "device" else ""
    source_id = str(event.get("sourceID", ""))
    names = source_names(state)
    actor_id, actor_type = str(event.get("actorId", "")), str(event.get("actorType", ""))
    actor = None
    if actor_id:
        tokens = token_labels(store, [actor_id] if actor_type == "api_token" else [])
        actor = actors.resolve(state, [actor_id], tokens)[actor_id]
    return EventView(
        columns=event,
        assets=asset_links(state, device_id),
        source=names.get(source_id, REMOVED_SOURCE),
        source_removed=source_id not in names,
        actor=actor,
        viewed=actors.what_was_viewed(
            str(event.get("action", "")),
            str(event.get("targetType", "")),
            str(event.get("targetComponent", "")),
        ),
        admins_denied=actor_type == "user" and actors.admins_denied(state, source_id),
    )


def token_labels(store: LogStore, token_ids: list[str]) -> dict[str, str]:
    """API-token id -> label for these tokens, from the stored events that create or rename
    them (only their rows are read back, however many tokens the tenant had)."""
    wanted = ", ".join(sql_string(token_id) for token_id in sorted(set(token_ids)) if token_id)
    if not wanted:
        return {}
    found = store.query(
        f"SELECT * FROM ({actors.TOKEN_EVENTS_SQL}) WHERE targetId IN ({wanted})"  # noqa: S608
    )
    return actors.token_labels(dict(zip(found.columns, row, strict=True)) for row in found.rows)


def asset_links(state: StateDB, device_id: str) -> list[AssetLink]:
    """The asset records a mapping made from this Kandji device, one per collection."""
    return device_records(state, [device_id]).get(device_id, []) if device_id else []


def device_records(state: StateDB, device_ids: list[str]) -> dict[str, list[AssetLink]]:
    """Kandji device id -> the asset records mappings made from it, by collection name."""
    wanted = sorted({device_id for device_id in device_ids if device_id})
    if not wanted:
        return {}
    with state.session() as session:
        rows = session.execute(
            select(MappedDevice.device_id, Collection.name, Mapping.name, MappedDevice.record_id)
            .join(Mapping, Mapping.id == MappedDevice.mapping_id)
            .join(Collection, Collection.id == Mapping.collection_id)
            .where(MappedDevice.device_id.in_(wanted))
            .order_by(Collection.name)
        ).all()
    mappings: dict[str, MappingInfo] = {}
    found: dict[str, list[AssetLink]] = {}
    for device_id, collection, mapping_name, record_id in rows:
        if mapping_name not in mappings:
            mappings[mapping_name] = get_mapping(state, mapping_name)
        serial, name = _serial_and_name(state, mappings[mapping_name], record_id)
        link = AssetLink(collection, mapping_name, record_id, serial, name)
        found.setdefault(device_id, []).append(link)
    return found


def _serial_and_name(state: StateDB, mapping: MappingInfo, record_id: str) -> tuple[str, str]:
    """The record's values of the fields the mapping fills from Kandji's serial_number and
    device_name; empty where it maps neither, or the record went meanwhile."""
    labels = {mapped.kandji.key: mapped.field.label for mapped in mapping.fields}
    if not {SERIAL_KEY, DEVICE_NAME_KEY} & labels.keys():
        return "", ""
    try:
        values = browse.get_record(state, mapping.collection, record_id).values
    except NotFound:
        return "", ""
    return (
        convert.text(values.get(labels.get(SERIAL_KEY, ""))),
        convert.text(values.get(labels.get(DEVICE_NAME_KEY, ""))),
    )
