"""The sync engine against a simulated tenant over real HTTP, on SQLite and PostgreSQL."""

import asyncio
import dataclasses
import math
from typing import Any

import pytest
from sqlalchemy import select

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import browse, collections, records
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.assets.convert import format_datetime
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import CollectionField, RecordChange
from kandji_bridge.inventory import runs
from kandji_bridge.inventory import sync as sync_module
from kandji_bridge.inventory.mappings import OnRemoved
from kandji_bridge.inventory.sync import FieldChange, SyncFailed, read_device, sync_mapping
from kandji_bridge.kandji.errors import InvalidURLError
from kandji_bridge.simulator.server import RunningSimulator
from kandji_bridge.simulator.timefmt import from_us

from .helpers import drop_device, edit_device, make_mapping, restore_device, row_counts, sync

LIST_FIELDS = (
    "serial_number=Serial",
    "device_name=Name",
    "tags=Tags",
    "last_check_in=Last Check In",
    "is_missing=Missing",
    "user_email=User Email",
)
DETAIL_FIELDS = ("serial_number=Serial", "model_identifier=Model Identifier")
DEVICES = "GET /api/v1/devices"
DETAILS = "GET /api/v1/devices/{device_id}/details"


def by_identifier(state: StateDB, label: str = "Device ID") -> dict[Any, tuple[str, dict]]:
    """Every record (archived too), keyed by its `label` value: (status, {label: value})."""
    collection = collections.get_collection(state, "ITAM")
    statuses = (records.ACTIVE, records.REMOVED, records.ARCHIVED)
    found = {}
    for status, values in records.iter_records(state, collection, statuses):
        named = {field.label: values.get(field.id) for field in collection.fields}
        found[named[label]] = (status, named)
    return found


def history(state: StateDB) -> list[tuple[str | None, str | None, str | None, str | None]]:
    """(field label or None for the status, old JSON, new JSON, sync run id) of every change."""
    with state.session() as session:
        return [
            tuple(row)  # type: ignore[misc]
            for row in session.execute(
                select(
                    CollectionField.label,
                    RecordChange.old_value,
                    RecordChange.new_value,
                    RecordChange.sync_run_id,
                )
                .outerjoin(CollectionField, CollectionField.id == RecordChange.field_id)
                .order_by(RecordChange.id)
            )
        ]


def test_a_first_sync_imports_every_device_and_records_the_run(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    mapping = make_mapping(state, fields=LIST_FIELDS)
    report = sync(state)
    devices = allow_simulator.devices
    assert (report.listed, report.created, report.updated, report.unchanged) == (40, 40, 0, 0)
    assert (report.skipped, report.conflicts, report.vanished) == (0, 0, 0)
    assert (report.api_requests, report.details_requests) == (1, 0)

    imported = by_identifier(state)
    assert len(imported) == 40
    device = devices[0]
    status, values = imported[device.device_id]
    assert status == "active"
    assert values["Serial"] == device.serial_number
    assert values["Name"] == device.device_name
    assert values["Tags"] == ([tag.name for tag in device.tags] or None)
    assert values["Last Check In"] == format_datetime(from_us(device.last_check_in_us))
    assert values["Missing"] is device.is_missing
    assert values["User Email"] == (device.user.email if device.user else None)
    assert values["Asset Tag"] is None  # not mapped
    no_user = next(d for d in devices if d.user is None)
    assert imported[no_user.device_id][1]["User Email"] is None  # Kandji sent user: ""

    [run] = runs.list_runs(state, mapping.id)
    assert run.id == report.run_id and run.status == "succeeded"
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert (run.created, run.unchanged, run.api_requests, run.errors) == (40, 0, 1, [])
    assert history(state) == []  # a record's first values are its creation, not a change


def test_a_second_sync_with_nothing_changed_writes_nothing(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state, fields=LIST_FIELDS)
    sync(state)
    browse.page_records(state, itam, sort_field="Name")  # its sort keys are kept from now on
    before = row_counts(state)
    report = sync(state)
    after = row_counts(state)
    assert (report.created, report.updated, report.unchanged) == (0, 0, 40)
    assert report.rows_written == 0
    assert before["record_sort_keys"] == 40
    assert after == {**before, "sync_runs": before["sync_runs"] + 1}  # only the run's own row


def test_the_whole_sync_sends_only_gets(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state, fields=(*LIST_FIELDS, "model_identifier=Model Identifier"))
    sync(state)
    sync(state, dry_run=True)
    stats = allow_simulator.stats
    assert all(endpoint.startswith("GET ") for endpoint in stats.by_endpoint), stats.by_endpoint
    assert dict(stats.by_endpoint) == {DEVICES: 2, DETAILS: 40}
    assert stats.by_status.keys() == {"200"}


def test_devices_are_listed_300_a_page(
    state: StateDB, simulator_factory, monkeypatch: pytest.MonkeyPatch, itam: CollectionInfo
) -> None:
    sim = simulator_factory(devices=650, events=1, seed=3)
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", sim.host_port)
    sources.add_source(state, "sim", sim.base_url, sim.token)
    make_mapping(state)
    report = sync(state)
    assert report.created == 650
    assert report.api_requests == math.ceil(650 / 300) == sim.stats.by_endpoint[DEVICES]


def test_details_are_read_only_for_new_devices_and_devices_that_checked_in(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state, fields=DETAIL_FIELDS)
    late = drop_device(allow_simulator, 0)  # enrolls after the first sync
    first = sync(state)
    assert (first.created, first.details_requests, first.api_requests) == (39, 39, 40)
    second = sync(state)
    assert (second.unchanged, second.details_requests, second.rows_written) == (39, 0, 0)

    restore_device(allow_simulator, late)
    for index in (0, 1):  # these two check in
        edit_device(
            allow_simulator, index, lambda d: setattr(d, "last_check_in_us", d.last_check_in_us + 1)
        )
    third = sync(state)
    assert (third.created, third.unchanged, third.details_requests) == (1, 39, 3)
    # The new device's detail value arrived; the two that checked in only note the check-in.
    assert by_identifier(state)[late.device_id][1]["Model Identifier"] == late.model.identifier
    assert sync(state).details_requests == 0


def test_changes_are_written_with_a_history_row_per_field(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state, fields=LIST_FIELDS)
    sync(state)
    device = allow_simulator.devices[3]
    old_name = device.device_name
    allow_simulator.state.rename_device(device.device_id, "KIOSK-7")
    edit_device(allow_simulator, 3, lambda d: setattr(d, "is_missing", not d.is_missing))
    report = sync(state)
    assert (report.updated, report.unchanged, report.created) == (1, 39, 0)
    _, values = by_identifier(state)[device.device_id]
    assert values["Name"] == "KIOSK-7" and values["Missing"] is device.is_missing
    was, now = (str(flag).lower() for flag in (not device.is_missing, device.is_missing))
    assert sorted(history(state)) == [
        ("Missing", was, now, report.run_id),
        ("Name", f'"{old_name}"', '"KIOSK-7"', report.run_id),
    ]


def test_a_dry_run_writes_nothing_and_shows_each_change(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state, fields=LIST_FIELDS)
    empty = row_counts(state)
    dry = sync(state, dry_run=True)
    assert (dry.created, dry.run_id, dry.rows_written) == (40, None, 0)
    assert row_counts(state) == empty
    first = dry.changes[0]
    assert first.action == "create" and first.record == allow_simulator.devices[0].device_id
    assert FieldChange("Serial", None, allow_simulator.devices[0].serial_number) in first.fields

    sync(state)
    device = allow_simulator.devices[5]
    old_name = device.device_name
    allow_simulator.state.rename_device(device.device_id, "Renamed Mac")
    before = row_counts(state)
    dry = sync(state, dry_run=True)
    assert row_counts(state) == before
    assert (dry.updated, dry.unchanged) == (1, 39)
    [change] = dry.changes
    assert (change.action, change.record) == ("update", device.device_id)
    assert change.fields == (FieldChange("Name", old_name, "Renamed Mac"),)
    assert by_identifier(state)[device.device_id][1]["Name"] == old_name


def test_shared_and_empty_identifiers_are_reported_and_left_out(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    devices = allow_simulator.devices
    twin = devices[1]
    edit_device(allow_simulator, 2, lambda d: setattr(d, "serial_number", twin.serial_number))
    mapping = make_mapping(state, identifier="serial_number=Serial", fields=("device_name=Name",))
    report = sync(state)
    assert (report.created, report.conflicts) == (38, 2)
    assert {problem.device.id for problem in report.problems} == {
        devices[1].device_id,
        devices[2].device_id,
    }
    assert f"its Serial {twin.serial_number!r} is shared by 2 devices" in report.problems[0].reason
    assert twin.serial_number not in by_identifier(state, "Serial")
    [run] = runs.list_runs(state, mapping.id)
    assert run.conflicts == 2 and any("is shared by 2 devices" in e for e in run.errors)


def test_devices_without_the_identifier_are_skipped_with_the_reason(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state, identifier="asset_tag=Asset Tag", fields=("device_name=Name",))
    report = sync(state)
    untagged = [d for d in allow_simulator.devices if not d.asset_tag]
    assert untagged and report.skipped == len(untagged)
    assert report.created == 40 - len(untagged)
    assert {str(problem) for problem in report.problems} == {
        f"device {d.device_name} ({d.device_id}): its Asset Tag is empty" for d in untagged
    }


def test_a_record_two_devices_would_claim_is_left_alone(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    tagged = [i for i, d in enumerate(allow_simulator.devices) if d.asset_tag]
    first, second = tagged[0], tagged[1]
    make_mapping(state, identifier="asset_tag=Asset Tag", fields=("device_name=Name",))
    sync(state)
    tag = allow_simulator.devices[first].asset_tag
    before = by_identifier(state, "Asset Tag")[tag]
    edit_device(allow_simulator, first, lambda d: setattr(d, "asset_tag", "RETAGGED-1"))
    edit_device(allow_simulator, second, lambda d: setattr(d, "asset_tag", tag))
    report = sync(state)
    reasons = {problem.device.id: problem.reason for problem in report.problems}
    first_id, second_id = (allow_simulator.devices[i].device_id for i in (first, second))
    assert report.conflicts == 2  # the other problems: devices without a tag, skipped
    assert reasons[first_id].startswith(f"the record with Asset Tag {tag!r} is claimed by")
    assert reasons[second_id].endswith(f"but its Asset Tag {tag!r} belongs to another record")
    assert by_identifier(state, "Asset Tag")[tag] == before


def test_unique_values_can_swap_between_records_in_one_sync(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    make_mapping(state, fields=("asset_tag=Asset Tag",))
    sync(state)
    one, two = [d for d in allow_simulator.devices if d.asset_tag][:2]
    one.asset_tag, two.asset_tag = two.asset_tag, one.asset_tag
    report = sync(state)
    assert (report.updated, report.conflicts) == (2, 0)
    imported = by_identifier(state)
    assert imported[one.device_id][1]["Asset Tag"] == one.asset_tag
    assert imported[two.device_id][1]["Asset Tag"] == two.asset_tag


def test_a_unique_value_freed_in_a_later_batch_is_taken_by_the_next_sync(
    state: StateDB,
    source: str,
    itam: CollectionInfo,
    allow_simulator: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_module, "BATCH_SIZE", 1)  # every device in its own transaction
    make_mapping(state, fields=("asset_tag=Asset Tag",))
    sync(state)
    tagged = [i for i, d in enumerate(allow_simulator.devices) if d.asset_tag]
    taker, giver = tagged[0], tagged[1]
    wanted = allow_simulator.devices[giver].asset_tag
    edit_device(allow_simulator, taker, lambda d: setattr(d, "asset_tag", wanted))
    edit_device(allow_simulator, giver, lambda d: setattr(d, "asset_tag", "NEW-TAG"))
    report = sync(state)  # the taker's transaction comes before the giver lets go
    taker_id = allow_simulator.devices[taker].device_id
    assert (report.updated, report.conflicts) == (1, 1)
    [problem] = report.problems
    assert problem.device.id == taker_id
    assert problem.reason == f"its Asset Tag {wanted!r} is already in another record"
    assert sync(state).updated == 1  # now the tag is free
    assert by_identifier(state)[taker_id][1]["Asset Tag"] == wanted


@pytest.mark.parametrize(
    ("policy", "status"),
    [(OnRemoved.KEEP, "active"), (OnRemoved.MARK, "removed"), (OnRemoved.ARCHIVE, "archived")],
)
def test_vanished_and_removed_devices_follow_the_mapping_policy(
    state: StateDB,
    source: str,
    itam: CollectionInfo,
    allow_simulator: RunningSimulator,
    policy: OnRemoved,
    status: str,
) -> None:
    make_mapping(state, on_removed=policy)
    already = {d.device_id for d in allow_simulator.devices if d.is_removed}  # in the seeded tenant
    sync(state)
    present = [i for i, d in enumerate(allow_simulator.devices) if not d.is_removed]
    flagged = edit_device(allow_simulator, present[1], lambda d: setattr(d, "is_removed", True))
    gone = drop_device(allow_simulator, present[0])
    report = sync(state)
    assert report.vanished == 1
    imported = by_identifier(state)
    assert len(imported) == 40  # nothing deleted
    out = {*already, gone.device_id, flagged.device_id}
    expected = {device_id: status if device_id in out else "active" for device_id in imported}
    assert {device_id: record[0] for device_id, record in imported.items()} == expected
    exported = list(records.iter_records(state, collections.get_collection(state, "ITAM")))
    archived = sum(status == "archived" for status in expected.values())
    assert len(exported) == 40 - archived  # exports leave archived records out

    restore_device(allow_simulator, gone)
    flagged.is_removed = False
    sync(state)
    back = {device_id: record[0] for device_id, record in by_identifier(state).items()}
    assert back == {d: status if d in already else "active" for d in imported}
    status_changes = [(old, new) for label, old, new, _ in history(state) if label is None]
    went, came = ('"active"', f'"{status}"'), (f'"{status}"', '"active"')
    if status != "active":  # two went out and came back (the seeded tenant's were created so)
        assert sorted(status_changes) == sorted([went, went, came, came])
    else:
        assert status_changes == []


def test_a_sync_that_fails_midway_leaves_whole_records_and_the_next_completes_it(
    state: StateDB,
    source: str,
    itam: CollectionInfo,
    allow_simulator: RunningSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sync_module, "BATCH_SIZE", 10)
    mapping = make_mapping(state, fields=(*DETAIL_FIELDS, "device_name=Name"))
    token = allow_simulator.token

    def revoke_after_first_batch(stage: str, done: int, total: int | None) -> None:
        if stage == "write" and done == 10:
            allow_simulator.state.revoke_permission(token, "details")

    with pytest.raises(SyncFailed) as caught:
        sync(state, progress=revoke_after_first_batch)
    assert str(caught.value).startswith(
        "The sync of mapping devices stopped after 10 of 40 devices (The API token for "
    )
    assert '"Device details" permission (403)' in str(caught.value)
    imported = by_identifier(state)
    assert len(imported) == 10
    for _, values in imported.values():  # each record whole: every mapped field is there
        assert None not in (values["Serial"], values["Model Identifier"], values["Name"])
    [failed] = runs.list_runs(state, mapping.id)
    assert failed.status == "failed" and failed.created == 10
    assert '"Device details" permission' in failed.errors[0]
    assert failed.api_requests == failed.details_requests + 1

    allow_simulator.state.grant_permission(token, "details")
    report = sync(state)
    assert (report.created, report.unchanged, report.details_requests) == (30, 10, 30)
    assert len(by_identifier(state)) == 40


def test_a_token_without_the_device_permission_fails_naming_it(
    state: StateDB, allow_simulator: RunningSimulator, itam: CollectionInfo
) -> None:
    allow_simulator.state.set_token("audit-only", {"audit"})
    sources.add_source(state, "sim", allow_simulator.base_url, "audit-only")
    mapping = make_mapping(state)
    with pytest.raises(SyncFailed) as caught:
        sync(state)
    assert str(caught.value).startswith(
        "The sync of mapping devices stopped while listing devices, nothing written: The API "
        f'token for {allow_simulator.host_port} lacks the "Device list" permission (403)'
    )
    [run] = runs.list_runs(state, mapping.id)
    assert run.status == "failed" and run.created == 0


def test_a_value_the_field_cannot_take_skips_the_device_with_the_reason(
    state: StateDB, source: str, itam: CollectionInfo
) -> None:
    mapping = make_mapping(state, fields=("last_check_in=Last Check In",))
    device = read_device(
        {"device_id": "d1", "device_name": "Mac", "last_check_in": "soon"}, mapping
    )
    assert device.problem == (
        "its last_check_in cannot go into the datetime field 'Last Check In' "
        '(expected a date and time, got "soon")'
    )


def test_the_allowed_hosts_come_from_the_settings_not_the_environment(
    state: StateDB, simulator: RunningSimulator, itam: CollectionInfo, monkeypatch
) -> None:
    """As `demo` and `serve` run it: the settings list the simulator, the environment may not."""
    monkeypatch.delenv("KANDJI_BRIDGE_ALLOWED_HOSTS", raising=False)
    sources.add_source(state, "sim", simulator.base_url, simulator.token)
    mapping = make_mapping(state)
    allowed = dataclasses.replace(state.settings, allowed_hosts=frozenset({simulator.host_port}))
    report = asyncio.run(sync_mapping(dataclasses.replace(state, settings=allowed), "devices"))
    assert report.created == 40

    # And the environment alone does not let a host the settings leave out through.
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", simulator.host_port)
    with pytest.raises(InvalidURLError, match="KANDJI_BRIDGE_ALLOWED_HOSTS"):
        asyncio.run(sync_mapping(state, "devices"))
    assert len(runs.list_runs(state, mapping.id)) == 1  # refused before a run is recorded


def test_sorted_pages_and_searches_follow_what_later_syncs_change(
    state: StateDB, source: str, itam: CollectionInfo, allow_simulator: RunningSimulator
) -> None:
    """The first sort on a field makes its keys; from then on each sync keeps them current,
    values and statuses both (a page sorted by Name lists what the records hold now)."""
    make_mapping(state, fields=LIST_FIELDS, on_removed=OnRemoved.MARK)
    sync(state)

    def names(status: str = "active", search: str = "") -> list[str]:
        page = browse.page_records(
            state, itam, sort_field="Name", status=status, search=search, page_size=500
        )
        return [str(row.values.get(itam.field("Name").id)) for row in page.rows]

    before = names()
    assert before == sorted(before, key=str.lower) and len(before) == 40 - sum(
        device.is_removed for device in allow_simulator.devices
    )
    present = [i for i, d in enumerate(allow_simulator.devices) if not d.is_removed]
    edit_device(allow_simulator, present[0], lambda d: setattr(d, "device_name", "aaa Mac"))
    gone = drop_device(allow_simulator, present[1])
    sync(state)

    after = names()
    assert after[0] == "aaa Mac"
    assert after == sorted(after, key=str.lower) and len(after) == len(before) - 1
    assert gone.device_name in names(status="removed")
    assert names(search="AAA mac") == ["aaa Mac"]  # the search reads the new value
