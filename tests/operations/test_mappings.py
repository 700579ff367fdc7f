"""The mapping operations over a real state DB and a simulated tenant, over real HTTP."""

import dataclasses
import os
import re
from datetime import UTC, datetime

import pytest

from inventory.helpers import make_mapping, sync
from kandji_bridge import source_registry as sources
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.config import ENV_ALLOWED_HOSTS, parse_allowed_hosts
from kandji_bridge.db import StateDB
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, MappingUpdate, Pair, parse_pair
from kandji_bridge.jobs import status
from kandji_bridge.operations import mappings as operation
from kandji_bridge.operations.mappings import MappingDraft
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.simulator.server import RunningSimulator


def allowing(state: StateDB) -> StateDB:
    """The state with the settings a process started now loads (the simulator's host allowed)."""
    allowed = parse_allowed_hosts(os.environ.get(ENV_ALLOWED_HOSTS))
    return dataclasses.replace(
        state, settings=dataclasses.replace(state.settings, allowed_hosts=allowed)
    )


def draft(**changes: object) -> MappingDraft:
    base = MappingDraft(
        name="devices",
        source="sim",
        collection="ITAM",
        identifier_kandji="device_id",
        identifier_field="Device ID",
        rows=[("serial_number", "Serial"), ("device_name", "Name")],
    )
    return dataclasses.replace(base, **changes)


def test_check_names_each_bad_part_where_it_belongs(
    state: StateDB, itam: CollectionInfo, source: str
) -> None:
    spec, errors = operation.check_mapping(state, draft())
    assert errors == {} and spec is not None and [p.field for p in spec.pairs] == ["Serial", "Name"]
    bad = draft(
        schedule_minutes="0",
        rows=[("serial_numbr", "Serial"), ("device_name", "Serial"), ("", "Name")],
    )
    spec, errors = operation.check_mapping(state, bad)
    assert spec is None
    assert errors["schedule_minutes"].startswith("Enter a whole number of minutes from 1 to")
    assert errors["row-2"] == "Choose both the Kandji field and the collection field."
    _, errors = operation.check_mapping(state, draft(schedule_minutes="60", rows=bad.rows[:2]))
    assert "did you mean serial_number?" in errors["row-0"]
    assert set(errors) == {"row-0"}
    _, errors = operation.check_mapping(state, draft(identifier_field="Name"))
    assert "unique" in errors["identifier"]


def test_create_checks_the_token_then_saves_and_remove_deletes(
    state: StateDB, itam: CollectionInfo, source: str, allow_simulator: RunningSimulator
) -> None:
    spec, _ = operation.check_mapping(state, draft())
    assert spec is not None
    created = operation.create_mapping(allowing(state), spec)
    assert (created.name, created.collection.name) == ("devices", "ITAM")
    _, errors = operation.check_mapping(state, draft())
    assert errors == {"name": "A mapping named 'devices' already exists; pick another name."}
    operation.remove_mapping(state, "devices")
    with pytest.raises(NotFound, match="No mapping named devices"):
        mappings.get_mapping(state, "devices")


def test_a_token_lacking_device_details_saves_nothing(
    state: StateDB, itam: CollectionInfo, simulator_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = simulator_factory(devices=5, events=0, tokens={"list-only": {"devices"}})
    monkeypatch.setenv(ENV_ALLOWED_HOSTS, limited.host_port)
    sources.add_source(state, "limited", limited.base_url, "list-only")
    spec = MappingSpec(
        "details", "limited", "ITAM", parse_pair("device_id=Device ID"),
        [parse_pair("model_identifier=Model Identifier")],
    )  # fmt: skip
    with pytest.raises(BridgeError, match=r"^Mapping details was not saved: "):
        operation.create_mapping(allowing(state), spec)
    assert mappings.list_mappings(state) == []


def test_preview_writes_nothing(
    state: StateDB, itam: CollectionInfo, source: str, allow_simulator: RunningSimulator
) -> None:
    spec, _ = operation.check_mapping(state, draft())
    assert spec is not None
    operation.create_mapping(allowing(state), spec, verify=False)
    report = operation.preview_mapping(allowing(state), "devices")
    assert report.dry_run and report.created == len(allow_simulator.devices)
    assert report.run_id is None and mappings.list_mappings(state)[0].last_run is None


def test_start_sync_runs_the_mapping_job_inline_and_records_its_status(
    state: StateDB,
    itam: CollectionInfo,
    source: str,
    allow_simulator: RunningSimulator,
    runtime_for,
) -> None:
    runtime = runtime_for(allow_simulator)
    spec, _ = operation.check_mapping(state, draft())
    assert spec is not None
    mapping = operation.create_mapping(runtime.state, spec)
    outcome = operation.start_sync(runtime.jobs, mapping)
    assert (outcome.queued, outcome.error) == (False, None)
    [summary] = mappings.list_mappings(state)
    assert summary.last_run is not None and summary.last_run.status == "succeeded"
    assert summary.last_run.created == len(allow_simulator.devices)
    job = status.job_statuses(state)[status.mapping_job(mapping.id)]
    assert (job.runs, job.failures, job.last_error) == (1, 0, None)


def test_activate_names_a_missing_permission_as_kandjis_token_page_does(
    state: StateDB, itam: CollectionInfo, simulator_factory, runtime_for
) -> None:
    limited = simulator_factory(devices=5, events=0, tokens={"list-only": {"devices"}})
    runtime = runtime_for(limited)
    sources.add_source(state, "limited", limited.base_url, "list-only")
    details = MappingSpec(
        "details", "limited", "ITAM", parse_pair("device_id=Device ID"),
        [parse_pair("model_identifier=Model Identifier")],
    )  # fmt: skip
    with pytest.raises(BridgeError, match="GET /device-details"):
        operation.activate_mapping(runtime.jobs, runtime.state, details)
    listed = dataclasses.replace(details, name="list", pairs=[])
    mapping = operation.activate_mapping(runtime.jobs, runtime.state, listed)
    [summary] = mappings.list_mappings(state)
    assert summary.mapping.name == mapping.name == "list"
    assert summary.last_run is not None and summary.last_run.created == 5


def mapping_rows(state: StateDB) -> list[tuple[str, str, bool, int]]:
    """Every mapping's pairs as stored: (kandji field, collection field, identifier, position)."""
    return [
        (m.kandji.key, m.field.label, m.is_identifier, position)
        for position, m in enumerate(mappings.get_mapping(state, "devices").fields)
    ]


def test_an_edit_adds_removes_and_repoints_fields_and_changes_the_identifier(
    state: StateDB, itam: CollectionInfo, source: str
) -> None:
    make_mapping(state)
    edited = operation.update_mapping(
        state,
        "devices",
        MappingUpdate(
            fields=(Pair("tags", "Tags"), Pair("serial_number", "Name")),
            remove_fields=("Serial",),
            schedule_minutes=15,
        ),
        verify=False,
    )
    assert sync(state, "devices").created == 40
    assert [(m.kandji.key, m.field.label) for m in edited.fields] == [
        ("device_id", "Device ID"),
        ("tags", "Tags"),
        ("serial_number", "Name"),
    ]
    assert edited.schedule_minutes == 15 and edited.enabled
    edited = operation.update_mapping(
        state, "devices", MappingUpdate(identifier=Pair("serial_number", "Serial")), verify=False
    )
    # The devices already imported keep their records under the new identifier (whose field,
    # unmapped since the first edit, is filled again).
    report = sync(state, "devices")
    assert (report.created, report.conflicts, report.updated) == (0, 0, 40)
    # The former identifier keeps filling its field, as an ordinary one.
    assert [(m.kandji.key, m.field.label, m.is_identifier) for m in edited.fields] == [
        ("serial_number", "Serial", True),
        ("device_id", "Device ID", False),
        ("tags", "Tags", False),
        ("serial_number", "Name", False),
    ]


@pytest.mark.parametrize(
    ("update", "says"),
    [
        (
            MappingUpdate(identifier=Pair("device_id", "Name")),
            "'Name' of collection ITAM is not; its unique fields are",
        ),
        (MappingUpdate(remove_fields=("Device ID",)), "is the Unique Identifier of mapping"),
        (MappingUpdate(remove_fields=("Tags",)), "does not fill the field 'Tags'"),
        (MappingUpdate(fields=(Pair("tags", "Capacity GB"),)), "cannot hold"),
        (MappingUpdate(schedule_minutes=99999999), "The schedule must be"),
    ],
)
def test_an_edit_that_cannot_work_says_why_and_changes_nothing(
    state: StateDB, itam: CollectionInfo, source: str, update: MappingUpdate, says: str
) -> None:
    make_mapping(state)
    before = mapping_rows(state)
    with pytest.raises(BridgeError, match=re.escape(says)):
        operation.update_mapping(state, "devices", update, verify=False)
    assert mapping_rows(state) == before
    assert mappings.get_mapping(state, "devices").schedule_minutes == 60


def due(scheduler: Scheduler) -> list[str]:
    """The mappings serve's scheduler would sync now."""
    return [job.name for job in scheduler._due() if job.kind == status.MAPPING]


def test_a_disabled_mapping_is_not_scheduled_but_sync_now_still_runs_it(
    state: StateDB, itam: CollectionInfo, allow_simulator: RunningSimulator, runtime_for
) -> None:
    sources.add_source(state, "sim", allow_simulator.base_url, allow_simulator.token)
    mapping = make_mapping(state)
    scheduler = Scheduler(runtime_for(allow_simulator))
    assert due(scheduler) == ["devices"]
    disabled = operation.update_mapping(
        state, "devices", MappingUpdate(enabled=False), verify=False
    )
    assert disabled.enabled is False
    assert due(scheduler) == []
    assert mappings.due_mappings(state, datetime.now(UTC)) == []
    scheduler.trigger(status.mapping_job(mapping.id))
    assert due(scheduler) == ["devices"]
