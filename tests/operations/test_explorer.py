"""The explorer's operations: a page of events with its histogram and filter values, and one
event with the asset records of its device, against a real chDB store and SQLite state DB."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kandji_bridge.config import load_settings
from kandji_bridge.db import StateDB, open_state
from kandji_bridge.db.models import Collection, MappedDevice, Mapping, Record, Source
from kandji_bridge.errors import NotFound
from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.search import SearchQuery
from kandji_bridge.logs.store import LogStore, open_log_store
from kandji_bridge.operations.explorer import AssetLink, explore_logs, view_event

NOW = datetime.now(UTC).replace(microsecond=0)
DEVICE_ID = "5c6c7d04-0000-4000-8000-00000000e001"


def audit_event(number: int, **fields: object) -> tuple[dict, str]:
    data = {
        "id": f"01JEXP{number:020d}",
        "action": "update",
        "occurred_at": (NOW - timedelta(minutes=10 * number)).isoformat(),
        "actor_id": "a1",
        "actor_type": "user",
        "target_id": f"bp-{number}",
        "target_type": "blueprint",
        "target_component": "",
        "new_state": {},
        "metadata": {},
        **fields,
    }
    return data, json.dumps(data)


EVENTS = [
    audit_event(1, action="view_recovery_key", target_type="device", target_id=DEVICE_ID),
    *(audit_event(number) for number in range(2, 7)),
]


@pytest.fixture
def store(log_store_url: str) -> Iterator[LogStore]:
    with open_log_store(log_store_url) as opened:
        opened.ensure_schema()
        ctx = NormalizeContext("ws-exp", "src-exp", 36500, received_at=NOW)
        opened.insert([normalize(data, raw, ctx) for data, raw in EVENTS])
        yield opened


@pytest.fixture
def state(tmp_path: Path) -> Iterator[StateDB]:
    opened = open_state(load_settings(tmp_path / "home", env={}))
    yield opened
    opened.close()


def last_day() -> SearchQuery:
    return SearchQuery(start=NOW - timedelta(days=1), end=NOW + timedelta(minutes=1))


def test_an_exploration_holds_a_page_its_histogram_and_the_filter_values(
    store: LogStore, state: StateDB
) -> None:
    found = explore_logs(store, state, last_day(), limit=4, offset=0)
    assert len(found.page.rows) == 4 and found.page.has_more
    assert found.page.rows[0].action == "view_recovery_key", "newest first"
    assert found.histogram.total == len(EVENTS)
    assert found.histogram.bucket_seconds == 1800  # a day and a minute in at most 60 bars
    assert found.facets["action"] == ["update", "view_recovery_key"]
    assert found.facets["target_type"] == ["blueprint", "device"]
    rest = explore_logs(store, state, last_day(), limit=4, offset=4)
    assert len(rest.page.rows) == 2 and not rest.page.has_more


def test_an_event_view_links_its_device_to_its_asset_records(
    store: LogStore, state: StateDB
) -> None:
    with state.session() as session:
        source = Source(name="acme", api_url="https://acme.api.kandji.io", token_ciphertext="x")
        collection = Collection(name="Company Laptops")
        session.add_all([source, collection])
        session.flush()
        record = Record(collection_id=collection.id)
        mapping = Mapping(name="Macs", source_id=source.id, collection_id=collection.id)
        session.add_all([record, mapping])
        session.flush()
        session.add(MappedDevice(mapping_id=mapping.id, device_id=DEVICE_ID, record_id=record.id))
        record_id = record.id
    rows = explore_logs(store, state, last_day(), limit=10, offset=0).page.rows
    device_event, other_event = rows[0].id, rows[1].id
    view = view_event(store, state, device_event)
    assert view.columns["targetId"] == DEVICE_ID
    assert view.assets == [AssetLink("Company Laptops", "Macs", record_id)]
    assert view.assets[0].url == f"/collections/Company%20Laptops/records/{record_id}"
    assert view_event(store, state, other_event).assets == []
    with pytest.raises(NotFound):
        view_event(store, state, "no-such-event")
