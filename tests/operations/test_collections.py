"""The collection operations over a real state DB, chDB and a simulated tenant."""

import re

import orjson
import pytest

from inventory.helpers import make_mapping, sync
from kandji_bridge.assets.browse import InvalidBrowse
from kandji_bridge.assets.collections import CollectionInfo, FieldSpec, InvalidCollection
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.assets.editing import CollectionEdit
from kandji_bridge.db import StateDB
from kandji_bridge.errors import AlreadyExists, BridgeError, NotFound
from kandji_bridge.inventory import mappings
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


def stored(state: StateDB) -> tuple[object, ...]:
    """What a user sees of every collection: names, fields, record counts, mappings, and the
    mapping's pairs."""
    return tuple(
        (o.collection.name, o.collection.fields, o.records, o.mappings)
        for o in operation.list_collections(state)
    ) + tuple((m.mapping.name, m.mapping.fields) for m in mappings.list_mappings(state))


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            CollectionEdit(remove_fields=("Device ID",)),
            "is the Unique Identifier of mapping 'devices'",
        ),
        (CollectionEdit(remove_fields=("Serial",)), "Mapping 'devices' fills the field 'Serial'"),
        (CollectionEdit(not_unique=("Device ID",)), "give that mapping another identifier"),
        (CollectionEdit(remove_fields=("Nope",)), "has no field 'Nope'"),
        (
            CollectionEdit(rename="Loaners", add_fields=(FieldSpec("OS", FieldType.TEXT),)),
            "A collection named Loaners already exists",
        ),
        (
            CollectionEdit(add_fields=(FieldSpec("name", FieldType.TEXT),)),
            "already has a field 'name'",
        ),
    ],
)
def test_an_edit_that_would_break_a_mapping_names_it_and_changes_nothing(
    state: StateDB, itam: CollectionInfo, source: str, edit: CollectionEdit, says: str
) -> None:
    operation.create_collection(state, "Loaners", [operation.field_spec("Serial", "text")])
    make_mapping(state, name="devices")
    sync(state, "devices")
    before = stored(state)
    with pytest.raises(BridgeError, match=re.escape(says)):
        operation.update_collection(state, "ITAM", edit)
    assert stored(state) == before


def test_rename_add_and_remove_fields_keep_the_records_and_their_other_values(
    state: StateDB, itam: CollectionInfo, source: str
) -> None:
    make_mapping(state, name="devices")
    sync(state, "devices")
    mappings.remove_mapping(state, "devices")
    edited = operation.update_collection(
        state,
        "ITAM",
        CollectionEdit(
            rename="Fleet",
            remove_fields=("Name",),
            not_unique=("Serial",),
            add_fields=(FieldSpec("Room", FieldType.TEXT), FieldSpec("Name", FieldType.NUMBER)),
        ),
    )
    assert edited.collection.name == "Fleet" and edited.records == {"active": 40}
    labels = [(f.label, f.type, f.unique) for f in edited.collection.fields]
    assert labels[-2:] == [("Room", FieldType.TEXT, False), ("Name", FieldType.NUMBER, False)]
    assert ("Serial", FieldType.TEXT, False) in labels
    rows = orjson.loads(b"".join(operation.export_collection(state, "Fleet", "json").chunks))
    assert len(rows) == 40
    # The new Name field starts empty, whatever the removed one held.
    assert {row["Name"] for row in rows} == {None} and all(row["Device ID"] for row in rows)
    found = operation.browse_records(state, "Fleet", search=rows[0]["Device ID"])
    assert found.total == 1


def test_delete_says_what_goes_and_is_refused_while_a_mapping_fills_the_collection(
    state: StateDB, itam: CollectionInfo, source: str
) -> None:
    make_mapping(state, name="devices")
    sync(state, "devices")
    before = stored(state)
    with pytest.raises(BridgeError, match="is filled by mapping 'devices'; remove the mapping"):
        operation.remove_collection(state, "ITAM")
    assert stored(state) == before
    mappings.remove_mapping(state, "devices")
    gone = operation.remove_collection(state, "ITAM")
    assert gone.records == {"active": 40}
    assert operation.list_collections(state) == []
    with pytest.raises(NotFound):
        operation.show_collection(state, "ITAM")
