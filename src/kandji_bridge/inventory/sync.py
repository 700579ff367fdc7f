"""One device import for a mapping: list, match, read details where needed, write what changed.

1. List every device (offset paging, 300 a page), keeping only the mapped values, converted.
2. Match devices to records (matching.py); conflicts and empty identifiers are left out.
3. In batches: read the details of devices that are new or whose last_check_in changed (only if
   a detail field is mapped), compare with what is stored, and write the differences in one
   transaction per batch. A sync that fails midway leaves each record fully updated or untouched,
   and the next sync finds what is left to do by comparing again.
4. Apply the mapping's policy to records whose device vanished or is marked removed.

Nothing is written to Kandji: the client only has GET methods. A dry run does all of it but the
writes, and returns every change field by field.
"""

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kandji_bridge import redact
from kandji_bridge.assets import records
from kandji_bridge.assets.collections import FieldInfo
from kandji_bridge.assets.convert import ConversionError, Value, convert, decode, encode, text
from kandji_bridge.assets.records import ACTIVE, ARCHIVED, REMOVED, RecordWrites, Stored
from kandji_bridge.db.models import utcnow
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.inventory import runs
from kandji_bridge.inventory.links import LinkWrite, LinkWrites, load_links, write_links
from kandji_bridge.inventory.mappings import MappedField, MappingInfo, OnRemoved, get_mapping
from kandji_bridge.inventory.matching import Device, Plan, Problem, Target, match
from kandji_bridge.kandji.client import ClientStats, KandjiClient
from kandji_bridge.kandji.errors import DeviceNotFoundError
from kandji_bridge.kandji.permissions import DEVICE_DETAILS
from kandji_bridge.source_registry import get_source_token

PAGE_SIZE = 300  # Kandji's largest device page
BATCH_SIZE = 2000  # devices per write transaction
DETAILS_CONCURRENCY = 8  # details calls in flight; the client's rate limiter sets the pace
STATUS_LABEL = "Record status"

# (stage, done, total or None when not known yet): "list", "details", "write"
Progress = Callable[[str, int, int | None], None]


class SyncFailed(BridgeError):
    """A sync stopped; what it wrote before stopping is complete and kept."""


class FieldChange(NamedTuple):
    label: str
    old: Value
    new: Value


@dataclass(frozen=True, slots=True)
class Change:
    action: str  # "create", "update", "vanished"
    record: str  # the identifier value, as text
    device: str | None
    fields: tuple[FieldChange, ...]  # filled in dry runs only


@dataclass
class SyncReport:
    mapping: str
    dry_run: bool
    run_id: str | None = None
    listed: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    conflicts: int = 0
    vanished: int = 0
    api_requests: int = 0
    details_requests: int = 0
    problems: list[Problem] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # kept for dry runs only
    rows_written: int = 0


@dataclass(frozen=True)
class _Context:
    mapping: MappingInfo
    run_id: str | None  # None: a dry run
    now: datetime
    fields: dict[int, FieldInfo]

    @property
    def dry_run(self) -> bool:
        return self.run_id is None

    @property
    def identifier(self) -> FieldInfo:
        return self.mapping.identifier.field


async def sync_mapping(
    state: StateDB,
    name: str,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    stats: ClientStats | None = None,
) -> SyncReport:
    """Import the devices of mapping `name` into its collection (or, dry, say what would change).

    `stats`, if given, receives the Kandji client's request counts (the service's /metrics).
    """
    mapping = get_mapping(state, name)
    token = get_source_token(state, mapping.source.name)
    # Made first: a source URL no longer allowed fails here, before a run is recorded.
    client = KandjiClient(
        mapping.source.api_url,
        token,
        allowed_hosts=state.settings.allowed_hosts,
        limits=state.settings.kandji_limits,
    )
    if stats is not None:
        client.stats = stats
    report = SyncReport(mapping.name, dry_run)
    report.run_id = None if dry_run else runs.start_run(state, mapping.id)
    context = _Context(
        mapping,
        report.run_id,
        utcnow(),
        {mapped.field.id: mapped.field for mapped in mapping.fields},
    )
    async with client:
        try:
            await _sync(state, client, context, report, progress or _no_progress)
        except BaseException as exc:
            _count_requests(client, report)
            if report.run_id is not None:
                reason = str(exc) if isinstance(exc, BridgeError) else redact.scrub(repr(exc))
                _finish(state, report, runs.FAILED, [reason])
            if isinstance(exc, BridgeError):
                raise SyncFailed(_stopped(mapping.name, report, exc)) from exc
            raise
    _count_requests(client, report)
    if report.run_id is not None:
        _finish(state, report, runs.SUCCEEDED, [])
    return report


def _stopped(name: str, report: SyncReport, exc: BridgeError) -> str:
    if not report.listed:
        return f"The sync of mapping {name} stopped while listing devices, nothing written: {exc}"
    written = report.created + report.updated + report.unchanged
    return (
        f"The sync of mapping {name} stopped after {written} of {report.listed} devices "
        f"({exc}); what was written is complete, and the next sync does the rest."
    )


async def _sync(
    state: StateDB, client: KandjiClient, context: _Context, report: SyncReport, progress: Progress
) -> None:
    mapping = context.mapping
    devices: list[Device] = []
    progress("list", 0, None)
    async for page in client.iter_device_pages(limit=PAGE_SIZE):
        devices.extend(read_device(raw, mapping) for raw in page)
        progress("list", len(devices), None)
    report.listed = len(devices)

    with state.session() as session:
        links = load_links(session, mapping.id)
        keys = records.load_keys(session, context.identifier.id)
    unique = {
        mapped.field.id: mapped.field.label
        for mapped in mapping.fields[1:]
        if mapped.field.unique and not mapped.kandji.needs_details
    }
    plan = match(devices, keys, links, context.identifier.label, unique)
    report.skipped, report.conflicts = len(plan.skipped), len(plan.conflicts)
    report.problems = plan.skipped + plan.conflicts
    report.vanished = len(plan.vanished)

    details_total = sum(_needs_details(mapping, target) for target in plan.targets)
    details_done = 0
    progress("write", 0, len(plan.targets))
    written = 0
    for batch in _chunks(plan.targets, BATCH_SIZE):
        wanted = [target.device for target in batch if _needs_details(mapping, target)]
        if wanted:
            await _read_details(client, mapping, wanted)
            details_done += len(wanted)
            progress("details", details_done, details_total)
        _write_batch(state, context, batch, report)
        written += len(batch)
        progress("write", written, len(plan.targets))
    _write_vanished(state, context, plan, report)


def read_device(raw: dict[str, Any], mapping: MappingInfo) -> Device:
    """A listed device, with the values of the mapping's list fields converted."""
    device_id = str(raw["device_id"])
    device = Device(
        id=device_id,
        name=str(raw.get("device_name") or ""),
        check_in=raw.get("last_check_in") or None,
        removed=raw.get("is_removed") is True,
        key=None,
        values={},
    )
    _convert_into(device, (m for m in mapping.fields if not m.kandji.needs_details), raw)
    if device.problem is None:
        device.key = encode(device.values[mapping.identifier.field.id])
    return device


def _convert_into(device: Device, fields: Iterable[MappedField], payload: dict[str, Any]) -> None:
    for mapped in fields:
        try:
            device.values[mapped.field.id] = convert(
                mapped.kandji.read(payload), mapped.kandji.kind, mapped.field.type
            )
        except ConversionError as exc:
            device.problem = (
                f"its {mapped.kandji.key} cannot go into the {mapped.field.type.value} field "
                f"{mapped.field.label!r} ({exc})"
            )
            return


def _needs_details(mapping: MappingInfo, target: Target) -> bool:
    """Details are read for new devices, and for devices that checked in since they were last
    read: a device that has not checked in has nothing new to tell."""
    if not mapping.needs_details:
        return False
    return target.link is None or target.link.details_check_in != target.device.check_in


async def _read_details(client: KandjiClient, mapping: MappingInfo, devices: list[Device]) -> None:
    detail_fields = [mapped for mapped in mapping.fields if mapped.kandji.needs_details]
    slots = asyncio.Semaphore(DETAILS_CONCURRENCY)

    async def read(device: Device) -> None:
        async with slots:
            try:
                details = await client.get_device_details(device.id)
            except DeviceNotFoundError:
                device.problem = "it was deleted from Kandji during the sync"
                return
        _convert_into(device, detail_fields, details)
        device.details_read = True

    try:
        async with asyncio.TaskGroup() as group:
            for device in devices:
                group.create_task(read(device))
    except ExceptionGroup as failed:
        # The first failure is the one to tell; the TaskGroup cancelled the other calls.
        raise failed.exceptions[0] from None


def _write_batch(
    state: StateDB, context: _Context, batch: list[Target], report: SyncReport
) -> None:
    with state.session() as session:
        keyed = records.keyed_fields(session, context.mapping.collection)  # before reading
        existing = [target.record_id for target in batch if target.record_id is not None]
        stored = records.load_stored(session, existing)
        ready: list[tuple[Target, Stored | None]] = []
        for target in batch:
            problem = target.device.problem
            if problem is None and target.record_id is not None and target.record_id not in stored:
                problem = "its record was deleted during the sync"
            if problem is not None:
                _skip(report, Problem(target.device, problem))
                continue
            ready.append((target, stored.get(target.record_id) if target.record_id else None))
        writes, link_writes = _record_writes_for(context, keyed), LinkWrites(context.mapping.id)
        changes = [
            _record_writes(context, target, record, writes, link_writes) for target, record in ready
        ]
        failed: dict[int, str] = {}
        if not report.dry_run:
            failed, rows = _apply(session, context, ready, writes, link_writes, keyed)
            report.rows_written += rows
            for index, reason in failed.items():
                _skip(report, Problem(ready[index][0].device, reason), conflict=True)
    for index, change in enumerate(changes):
        if index in failed:
            continue
        if change is None:
            report.unchanged += 1
            continue
        report.created += change.action == "create"
        report.updated += change.action == "update"
        if report.dry_run:
            report.changes.append(change)


def _apply(
    session: Session,
    context: _Context,
    ready: list[tuple[Target, Stored | None]],
    writes: RecordWrites,
    link_writes: LinkWrites,
    keyed: tuple[FieldInfo, ...],
) -> tuple[dict[int, str], int]:
    """Write the batch in one statement per kind. If the database refuses a unique value, write
    device by device to find who collides. Returns {index in `ready`: why} and the rows written.
    """
    try:
        with session.begin_nested():
            records.write_records(session, writes)
            write_links(session, link_writes)
        return {}, writes.rows() + link_writes.rows()
    except IntegrityError:
        pass
    failed, written = {}, 0
    for index, (target, stored) in enumerate(ready):
        single, single_links = _record_writes_for(context, keyed), LinkWrites(context.mapping.id)
        _record_writes(context, target, stored, single, single_links)
        try:
            with session.begin_nested():
                records.write_records(session, single)
                write_links(session, single_links)
            written += single.rows() + single_links.rows()
        except IntegrityError:
            failed[index] = _collision(session, context, single)
    return failed, written


def _collision(session: Session, context: _Context, writes: RecordWrites) -> str:
    for claim in writes.claims:
        if records.holder(session, claim.field_id, claim.value) not in (None, claim.record_id):
            label = context.fields[claim.field_id].label
            return f"its {label} {text(decode(claim.value))!r} is already in another record"
    return "another sync changed the same records at the same time; the next sync retries it"


def _record_writes(
    context: _Context,
    target: Target,
    stored: Stored | None,
    writes: RecordWrites,
    link_writes: LinkWrites,
) -> Change | None:
    """Add to `writes` what brings one record up to date with its device, and to `link_writes`
    its link; returns the change they make (field by field in a dry run), or None if the record
    is up to date."""
    device, fields, explain = target.device, context.fields, context.dry_run
    status = _status(
        context.mapping.on_removed, device.removed, stored.status if stored else ACTIVE
    )
    changes: list[FieldChange] = []
    if stored is None:
        record_id = records.new_record_id()
        data = {field_id: value for field_id, value in device.values.items() if value is not None}
        writes.insert(record_id, status, data)
        if explain:
            changes += [FieldChange(fields[f].label, None, value) for f, value in data.items()]
        changed, action = True, "create"
    else:
        record_id = target.record_id or ""
        data = dict(stored.values)
        changed_fields = []
        for field_id, value in device.values.items():
            old = data.get(field_id)
            if encode(old) == encode(value):
                continue
            changed_fields.append(fields[field_id])
            if value is None:
                del data[field_id]
            else:
                data[field_id] = value
            if explain:
                changes.append(FieldChange(fields[field_id].label, old, value))
        if status != stored.status and explain:
            changes.append(FieldChange(STATUS_LABEL, stored.status, status))
        changed, action = bool(changed_fields) or status != stored.status, "update"
        if changed:
            writes.update(record_id, stored, status, data, changed_fields)
    _link_writes(target, record_id, link_writes)
    if not changed:
        return None
    record = text(device.values.get(context.identifier.id))
    return Change(action, record, str(device), tuple(changes))


def _link_writes(target: Target, record_id: str, writes: LinkWrites) -> None:
    device = target.device
    if target.takes_over is not None:
        writes.deletes.append(target.takes_over)
    link = target.link
    check_in = device.check_in if device.details_read else (link.details_check_in if link else None)
    if link is None:
        writes.inserts.append(LinkWrite(device.id, record_id, check_in))
    elif link.details_check_in != check_in or link.record_id != record_id:
        writes.updates.append(LinkWrite(device.id, record_id, check_in))


def _write_vanished(state: StateDB, context: _Context, plan: Plan, report: SyncReport) -> None:
    """Records whose device left Kandji get the mapping's policy; nothing is ever deleted."""
    policy = context.mapping.on_removed
    if policy is OnRemoved.KEEP or not plan.vanished:
        return
    status = REMOVED if policy is OnRemoved.MARK else ARCHIVED
    with state.session() as session:
        writes = _record_writes_for(
            context, records.keyed_fields(session, context.mapping.collection)
        )
        for record_id, record in records.load_stored(session, plan.vanished).items():
            if record.status == status:
                continue
            writes.set_status(record_id, record, status)
            if report.dry_run:
                shown = text(record.values.get(context.identifier.id))
                change = FieldChange(STATUS_LABEL, record.status, status)
                report.changes.append(Change("vanished", shown, None, (change,)))
        if not report.dry_run:
            records.write_records(session, writes)
            report.rows_written += writes.rows()


def _status(policy: OnRemoved, removed: bool, current: str) -> str:
    if not removed:
        return ACTIVE
    if policy is OnRemoved.MARK:
        return REMOVED
    if policy is OnRemoved.ARCHIVE:
        return ARCHIVED
    return current


def _record_writes_for(context: _Context, keyed: tuple[FieldInfo, ...]) -> RecordWrites:
    return RecordWrites(context.mapping.collection, keyed, context.run_id, context.now)


def _skip(report: SyncReport, problem: Problem, conflict: bool = False) -> None:
    report.problems.append(problem)
    if conflict:
        report.conflicts += 1
    else:
        report.skipped += 1


def _finish(state: StateDB, report: SyncReport, status: str, errors: list[str]) -> None:
    assert report.run_id is not None
    runs.finish_run(
        state,
        report.run_id,
        status,
        errors + [str(problem) for problem in report.problems],
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        skipped=report.skipped,
        conflicts=report.conflicts,
        vanished=report.vanished,
        api_requests=report.api_requests,
        details_requests=report.details_requests,
    )


def _count_requests(client: KandjiClient, report: SyncReport) -> None:
    report.api_requests = client.stats.requests
    details = client.stats.by_endpoint.get(DEVICE_DETAILS.endpoint)
    report.details_requests = details.requests if details else 0


def _chunks(items: list[Target], size: int) -> Iterable[list[Target]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _no_progress(stage: str, done: int, total: int | None) -> None:
    pass
