"""Mappings as Asset Panda's Kandji integration describes them; every bad one refused unsaved."""

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from kandji_bridge import source_registry as sources
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import Mapping, MappingField, utcnow
from kandji_bridge.errors import AlreadyExists, BridgeError, NotFound
from kandji_bridge.inventory import mappings, runs
from kandji_bridge.inventory.fields import UnknownField
from kandji_bridge.inventory.mappings import InvalidMapping, MappingSpec, OnRemoved, parse_pair
from kandji_bridge.kandji.errors import PermissionDeniedError
from kandji_bridge.operations.verify import check_device_access

from .helpers import make_mapping


def mapping_rows(state: StateDB) -> tuple[int, int]:
    with state.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Mapping)) or 0,
            session.scalar(select(func.count()).select_from(MappingField)) or 0,
        )


def test_a_mapping_pairs_an_identifier_and_further_fields(
    state: StateDB, source: str, itam: CollectionInfo
) -> None:
    mapping = make_mapping(
        state,
        fields=("serial_number=Serial", "tags=Tags", "boot_volume_capacity_gb=Capacity GB"),
        on_removed=OnRemoved.MARK,
    )
    assert mapping.entity == "devices"
    assert mapping.source.name == "sim" and mapping.collection.name == "ITAM"
    assert mapping.identifier.kandji.key == "device_id"
    assert mapping.identifier.field.label == "Device ID"
    assert [(m.kandji.key, m.field.label) for m in mapping.fields[1:]] == [
        ("serial_number", "Serial"),
        ("tags", "Tags"),
        ("boot_volume_capacity_gb", "Capacity GB"),
    ]
    assert mapping.needs_details
    assert mapping.schedule_minutes == 60 and mapping.on_removed is OnRemoved.MARK
    assert mappings.get_mapping(state, "devices") == mapping
    [summary] = mappings.list_mappings(state)
    assert summary.mapping == mapping and summary.last_run is None


def test_a_conditional_identifier_comes_with_the_seeds_advice(
    state: StateDB, source: str, itam: CollectionInfo
) -> None:
    mapping = make_mapping(state, identifier="asset_tag=Asset Tag", fields=())
    assert mapping.warnings == (
        "Asset Tag: use if standardized and unique; devices that share a value, or have none, "
        "are reported and left out. device_id is the recommended identifier.",
    )
    assert not mapping.needs_details


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"identifier": "device_name=Name"}, InvalidMapping,
         "The identifier must be mapped to a field marked unique, so that one device matches one "
         "record, and 'Name' of collection ITAM is not; its unique fields are 'Device ID', "
         "'Serial', 'Asset Tag'."),
        ({"identifier": "device_id=Device ID", "fields": ("serial_nummer=Serial",)}, UnknownField,
         "'serial_nummer' is not a Kandji device field; did you mean serial_number? "
         "`kandji-bridge mapping fields` lists the keys (device_id, serial_number, ...)."),
        ({"identifier": "is_missing=Serial"}, InvalidMapping,
         "The Kandji field is_missing cannot identify a device (usage recommendation: Not "
         "suitable as identifier); identify devices by one of: asset_tag (use if standardized "
         "and unique), device_id (recommended unique identifier), "),
        ({"identifier": "hardware_uuid=Serial"}, InvalidMapping,
         "The Kandji field hardware_uuid comes from the device details call, which not every "
         "sync makes; identify devices by one of: "),
        ({"fields": ("serial_number=Capacity GB",)}, InvalidMapping,
         "The Kandji field serial_number holds text values, which the number field "
         "'Capacity GB' cannot hold; map it to a field of type text."),
        ({"fields": ("last_check_in=Missing",)}, InvalidMapping,
         "The Kandji field last_check_in holds timestamp values, which the boolean field "
         "'Missing' cannot hold; map it to a field of type text or date or datetime."),
        ({"fields": ("tags=Missing",)}, InvalidMapping,
         "The Kandji field tags holds list values, which the boolean field 'Missing' cannot "
         "hold; map it to a field of type text or list."),
        ({"fields": ("serial_number=Name", "device_name=Name")}, InvalidMapping,
         "The collection field 'Name' is mapped twice (from serial_number and device_name); "
         "map each field once."),
        ({"fields": ("serial_number=Serial No",)}, NotFound,
         "Collection ITAM has no field 'Serial No'; its fields are 'Device ID', "),
        ({"collection": "Assets"}, NotFound,
         "No collection named Assets; `kandji-bridge collection list` shows the names, "),
        ({"source": "prod"}, NotFound,
         "No source named prod; `kandji-bridge source list` shows the names."),
        ({"name": "devices"}, AlreadyExists,
         "A mapping named devices already exists; pick another name "),
    ],
)  # fmt: skip
def test_bad_mappings_are_refused_and_nothing_is_saved(
    state: StateDB,
    source: str,
    itam: CollectionInfo,
    changes: dict,
    error: type[BridgeError],
    message: str,
) -> None:
    make_mapping(state)  # "devices": an existing mapping is never harmed by a refusal
    before = mapping_rows(state)
    options = {"name": "second", **changes}
    with pytest.raises(error) as caught:
        make_mapping(state, **options)
    assert str(caught.value).startswith(message)
    assert mapping_rows(state) == before


def test_other_bad_settings(state: StateDB, source: str, itam: CollectionInfo) -> None:
    spec = MappingSpec("m", "sim", "ITAM", parse_pair("device_id=Device ID"))
    for changed, message in [
        ({"entity": "users"}, "The external entity 'users' cannot be imported; Kandji mappings "
         "import devices (--entity devices)."),
        ({"schedule_minutes": 0}, "The schedule must be 1 to 10080 minutes, not 0."),
    ]:  # fmt: skip
        with pytest.raises(InvalidMapping) as caught:
            mappings.create_mapping(state, MappingSpec(**{**vars(spec), **changed}))
        assert str(caught.value) == message
    with pytest.raises(InvalidMapping) as caught:
        parse_pair("serial_number")
    assert str(caught.value) == (
        "'serial_number' is not a field pair; write KANDJI_FIELD=COLLECTION_FIELD, like "
        "serial_number=Serial."
    )
    assert mapping_rows(state) == (0, 0)


def test_access_is_checked_for_exactly_what_the_mapping_needs(simulator_factory) -> None:
    sim = simulator_factory(
        devices=5, events=1, tokens={"list-only": frozenset({"devices"}), "none": frozenset()}
    )
    allowed = frozenset({sim.host_port})
    asyncio.run(check_device_access(sim.base_url, "list-only", False, allowed))
    with pytest.raises(PermissionDeniedError) as caught:
        asyncio.run(check_device_access(sim.base_url, "list-only", True, allowed))
    assert '"Device details" permission (403)' in str(caught.value)
    with pytest.raises(PermissionDeniedError) as caught:
        asyncio.run(check_device_access(sim.base_url, "none", False, allowed))
    assert '"Device list" permission (403)' in str(caught.value)
    assert set(sim.stats.by_endpoint) <= {
        "GET /api/v1/devices",
        "GET /api/v1/devices/{device_id}/details",
    }


def test_due_mappings_follow_their_schedule(
    state: StateDB, source: str, itam: CollectionInfo
) -> None:
    mapping = make_mapping(state)
    now = utcnow()
    assert mappings.due_mappings(state, now) == [mapping]  # never synced
    run_id = runs.start_run(state, mapping.id)
    runs.finish_run(state, run_id, runs.SUCCEEDED, [])
    assert mappings.due_mappings(state, utcnow()) == []
    assert mappings.due_mappings(state, utcnow() + timedelta(minutes=61)) == [mapping]


def test_a_source_in_use_cannot_be_removed_from_under_a_mapping(
    state: StateDB, source: str, itam: CollectionInfo
) -> None:
    make_mapping(state)
    with pytest.raises(Exception):  # noqa: B017 (the source registry's message is its own)
        sources.remove_source(state, "sim")
    assert mappings.get_mapping(state, "devices").source.name == "sim"
