"""A device an event targets, as the inventory knows it: the simulator's devices imported by a
real sync, its events collected by a real poll, and the explorer naming each device target by the
serial and name its record holds, linked to that record."""

from datetime import UTC, datetime, timedelta

from inventory.helpers import make_mapping, sync
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.db import StateDB
from kandji_bridge.logs.search import SearchQuery
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations.explorer import search_events, view_event
from kandji_bridge.operations.polling import poll_source
from kandji_bridge.simulator.server import RunningSimulator


def test_device_targets_show_the_serial_and_name_of_their_inventory_record(
    state: StateDB,
    itam: CollectionInfo,
    source: str,
    allow_simulator: RunningSimulator,
    store: ChdbLogStore,
    runtime_for,
) -> None:
    make_mapping(state)
    assert sync(state).created == len(allow_simulator.devices)
    runtime = runtime_for(allow_simulator)
    assert poll_source(runtime.settings, state, store, runtime.enricher, source).error is None
    now = datetime.now(UTC)
    query = SearchQuery(start=now - timedelta(days=40), end=now, target_type="device")
    found = search_events(store, state, query, limit=200)
    assert found.rows
    devices = {device.device_id: device for device in allow_simulator.tenant.devices}
    shown = 0
    for row in found.rows:
        device = devices.get(row.event.target_id)
        if device is None:  # deleted from the tenant since: in no collection
            assert row.device is None
            continue
        assert row.device is not None
        assert (row.device.serial, row.device.device_name) == (
            device.serial_number,
            device.device_name,
        )
        assert row.device.url.startswith("/collections/ITAM/records/")
        shown += 1
    assert shown > 10
    first = next(row for row in found.rows if row.device is not None)
    view = view_event(store, state, first.event.id)
    assert [(link.serial, link.device_name) for link in view.assets] == [
        (first.device.serial, first.device.device_name)
    ]
