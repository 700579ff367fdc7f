"""The collection operations over a real state DB, chDB and a simulated tenant."""

import orjson
import pytest

from inventory.helpers import make_mapping, sync
from kandji_bridge.assets.browse import InvalidBrowse
from kandji_bridge.assets.collections import CollectionInfo, InvalidCollection
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.db import StateDB
from kandji_bridge.errors import AlreadyExists, NotFound
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations import collections as operation
from kandji_bridge.simulator.server import RunningSimulator


def test_list_and_show_name_the_mappings_that_fill_a_collection(
    state: StateDB, itam: CollectionInfo, source: str
) -> None:
    operation.create_collection(state, "Loaners", [operation.field_spec("Serial", "TEXT", True)])
    make_mapping(state, name="devices")
    listed = operation.list_collections(state)
    assert [(o.collection.name, o.mappings) for o in listed] == [
        ("ITAM", ["devices"]),
        ("Loaners", []),
    ]
    shown = operation.show_collection(state, "ITAM")
    assert shown.collection == itam and shown.mappings == ["devices"] and shown.records == {}


def test_create_refuses_an_unknown_type_and_a_taken_name(
    state: StateDB, itam: CollectionInfo
) -> None:
    with pytest.raises(InvalidCollection, match="has the type 'money'; use one of text, number"):
        operation.field_spec("Price", "money")
    assert operation.field_spec("Seen", " DateTime ").type is FieldType.DATETIME
    with pytest.raises(AlreadyExists, match="A collection named ITAM already exists"):
        operation.create_collection(state, "ITAM", [operation.field_spec("Serial", "text")])


def test_export_csv_and_json_hold_every_imported_device(
    state: StateDB, itam: CollectionInfo, source: str, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state)
    sync(state)
    devices = {d.device_id: d for d in allow_simulator.devices}
    exported = operation.export_collection(state, "ITAM", "json")
    rows = orjson.loads(b"".join(exported.chunks))
    assert (exported.filename, exported.media_type) == ("ITAM.json", "application/json")
    assert {row["Device ID"]: row["Serial"] for row in rows} == {
        device_id: device.serial_number for device_id, device in devices.items()
    }
    csv_export = operation.export_collection(state, "ITAM", "csv")
    lines = b"".join(csv_export.chunks).decode("utf-8-sig").splitlines()
    assert lines[0].startswith("Device ID,Serial,Asset Tag,Name") and len(lines) == len(rows) + 1
    with pytest.raises(InvalidBrowse, match="Unknown export format 'xml'; use csv or json"):
        operation.export_collection(state, "ITAM", "xml")


def test_show_record_names_its_device_mapping_and_the_sync_that_changed_it(
    state: StateDB,
    itam: CollectionInfo,
    source: str,
    allow_simulator: RunningSimulator,
    store: ChdbLogStore,
) -> None:
    make_mapping(state)
    sync(state)
    device = allow_simulator.devices[0]
    allow_simulator.state.rename_device(device.device_id, "Renamed Mac")
    second = sync(state)
    page = operation.browse_records(state, "ITAM", search=device.device_id)
    assert page.total == 1 and page.collection == itam
    record = operation.show_record(state, store, "ITAM", page.rows[0].id)
    assert (record.device_id, record.mapping) == (device.device_id, "devices")
    assert [(c.field, c.new, c.mapping, c.sync_run_id) for c in record.history] == [
        ("Name", "Renamed Mac", "devices", second.run_id)
    ]
    assert record.timeline is not None and record.timeline.error == ""
    with pytest.raises(NotFound, match="has no record 'nope'"):
        operation.show_record(state, store, "ITAM", "nope")
