"""The logs explorer: one page of matching events with its histogram and filter values, and one
event with the asset records its device target became. The queries themselves are in
`logs.search`; a front end that needs one of them alone calls it there."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from kandji_bridge.db.models import Collection, MappedDevice, Mapping
from kandji_bridge.db.state import StateDB
from kandji_bridge.logs import search as logsearch
from kandji_bridge.logs.search import SearchPage, SearchQuery
from kandji_bridge.logs.store import LogStore


@dataclass(frozen=True)
class Exploration:
    """What the explorer shows for a search: a page of events, the events per time bucket over
    the whole range, the bucket size, and the values each filter select offers."""

    page: SearchPage
    buckets: list[tuple[datetime, int]]
    bucket_seconds: int
    facets: dict[str, list[str]]


def explore_logs(store: LogStore, query: SearchQuery, *, limit: int, offset: int) -> Exploration:
    """One explorer page; SearchError with one sentence for a search the store cannot run."""
    page = logsearch.search(store, query, limit, offset)
    return Exploration(
        page=page,
        buckets=logsearch.histogram(store, query),
        bucket_seconds=logsearch.bucket_seconds(query.start, query.end),
        facets=logsearch.facets(store, query),
    )


@dataclass(frozen=True)
class AssetLink:
    """An asset record a mapping made from a Kandji device, in one collection."""

    collection: str
    mapping: str
    record_id: str

    @property
    def url(self) -> str:
        return f"/collections/{quote(self.collection, safe='')}/records/{quote(self.record_id)}"


@dataclass(frozen=True)
class EventView:
    """Every column of one stored event, and the asset records of its device target."""

    columns: dict[str, Any]
    assets: list[AssetLink]


def view_event(store: LogStore, state: StateDB, event_id: str) -> EventView:
    """One event by its row id (NotFound when no stored event has it)."""
    event = logsearch.get_event(store, event_id)
    device_id = str(event.get("targetId", "")) if event.get("targetType") == "device" else ""
    return EventView(columns=event, assets=asset_links(state, device_id))


def asset_links(state: StateDB, device_id: str) -> list[AssetLink]:
    """The asset records a mapping made from this Kandji device, one per collection."""
    if not device_id:
        return []
    with state.session() as session:
        rows = session.execute(
            select(Collection.name, Mapping.name, MappedDevice.record_id)
            .join(Mapping, Mapping.id == MappedDevice.mapping_id)
            .join(Collection, Collection.id == Mapping.collection_id)
            .where(MappedDevice.device_id == device_id)
            .order_by(Collection.name)
        ).all()
    return [AssetLink(collection, mapping, record) for collection, mapping, record in rows]
