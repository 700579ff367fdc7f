"""Mappings: check a new mapping part by part, create one (its token checked first), edit one,
remove one, sync one now through the job runner, preview a sync. The CLI's `mapping` commands,
the Integrations pages and the REST API call these.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.assets.names import check_name
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import (
    DEFAULT_SCHEDULE_MINUTES,
    SCHEDULE_RANGE,
    MappingInfo,
    MappingSpec,
    MappingUpdate,
    OnRemoved,
    Pair,
)
from kandji_bridge.inventory.sync import Progress, SyncReport, sync_mapping
from kandji_bridge.jobs import status
from kandji_bridge.jobs.runner import JobOutcome, JobRunner
from kandji_bridge.kandji.errors import KandjiError, PermissionDeniedError
from kandji_bridge.operations.connection import missing_permission
from kandji_bridge.operations.verify import TOKEN, access_refused, device_access


@dataclass
class MappingDraft:
    """A new mapping as a form holds it, every part as typed."""

    name: str = ""
    source: str = ""
    entity: str = "devices"
    collection: str = ""
    identifier_kandji: str = ""
    identifier_field: str = ""
    rows: list[tuple[str, str]] = field(default_factory=list)  # (kandji key, field label)
    schedule_minutes: str = str(DEFAULT_SCHEDULE_MINUTES)
    on_removed: str = OnRemoved.KEEP.value

    def filled_rows(self) -> list[tuple[int, Pair]]:
        return [(i, Pair(k, f)) for i, (k, f) in enumerate(self.rows) if k.strip() or f.strip()]


def check_mapping(state: StateDB, draft: MappingDraft) -> tuple[MappingSpec | None, dict[str, str]]:
    """The spec, or the errors keyed by part ("row-N" for field row N), each where it belongs:
    validate_mapping stops at its first error, so each part is checked on its own."""
    errors: dict[str, str] = {}
    try:
        name = check_name("The mapping name", draft.name)
        if _mapping_exists(state, name):
            errors["name"] = f"A mapping named {name!r} already exists; pick another name."
    except BridgeError as exc:
        errors["name"] = str(exc)
    low, high = SCHEDULE_RANGE
    try:
        minutes = int(draft.schedule_minutes.strip())
        if not low <= minutes <= high:
            raise ValueError
    except ValueError:
        errors["schedule_minutes"] = f"Enter a whole number of minutes from {low} to {high}."
        minutes = DEFAULT_SCHEDULE_MINUTES
    if draft.on_removed not in {policy.value for policy in OnRemoved}:
        errors["on_removed"] = "Choose what happens to records of devices removed from Kandji."
    if draft.entity != "devices":
        errors["entity"] = "Kandji mappings import Devices; choose Devices."
    try:
        sources.get_source(state, draft.source)
    except BridgeError:
        errors["source"] = (
            "Connect Kandji first: Integrations > Kandji > Configure, then "
            "Test and save connection."
        )
    collection: CollectionInfo | None = None
    if not draft.collection:
        errors["collection"] = "Choose the collection the devices go into."
    else:
        try:
            collection = collections.get_collection(state, draft.collection)
        except BridgeError as exc:
            errors["collection"] = str(exc)
    if not draft.identifier_kandji or not draft.identifier_field:
        errors["identifier"] = (
            "Choose the Unique Identifier: a Kandji field and the unique collection field it "
            "goes into."
        )
    for index, pair in draft.filled_rows():
        if not pair.kandji.strip() or not pair.field.strip():
            errors[f"row-{index}"] = "Choose both the Kandji field and the collection field."
    spec = MappingSpec(
        name=draft.name,
        source=draft.source,
        collection=draft.collection,
        identifier=Pair(draft.identifier_kandji, draft.identifier_field),
        pairs=[pair for _, pair in draft.filled_rows()],
        entity=draft.entity,
        on_removed=OnRemoved(draft.on_removed) if "on_removed" not in errors else OnRemoved.KEEP,
        schedule_minutes=minutes,
    )
    if errors or collection is None:
        return None, errors
    # Name, source and collection are good now, so what validate_mapping refuses is the part's.
    try:
        mappings.validate_mapping(state, replace(spec, pairs=[]))
    except BridgeError as exc:
        return None, {"identifier": str(exc)}
    mapped_from = {collection.field(draft.identifier_field).label: draft.identifier_kandji}
    for index, pair in draft.filled_rows():
        try:
            mappings.validate_mapping(state, replace(spec, pairs=[pair]))
        except BridgeError as exc:
            errors[f"row-{index}"] = str(exc)
            continue
        label = collection.field(pair.field).label
        if label in mapped_from:
            errors[f"row-{index}"] = (
                f"The collection field {label!r} is already mapped from {mapped_from[label]}; "
                "map each field once."
            )
        mapped_from.setdefault(label, pair.kandji)
    if errors:
        return None, errors
    try:
        mappings.validate_mapping(state, spec)
    except BridgeError as exc:  # changed meanwhile (a field or the name taken): say it as it is
        return None, {"": str(exc)}
    return spec, {}


def create_mapping(
    state: StateDB,
    spec: MappingSpec,
    *,
    verify: bool = True,
    explain: Callable[[KandjiError], str] = str,
) -> MappingInfo:
    """Validate the mapping, check its source's token can read what it needs (unless not
    `verify`: one device-list call and one details call, both GET), and save it.

    `explain` words a refusal from Kandji for the front end (the Integrations pages name the
    permissions as Kandji's token page does)."""
    valid = mappings.validate_mapping(state, spec)
    if verify:
        refused = _check_access(state, valid.source.name, valid.needs_details)
        if refused is not None:
            raise BridgeError(
                f"Mapping {valid.name} was not saved: {explain(refused)}"
            ) from refused
    return mappings.save_mapping(state, valid)


def _check_access(state: StateDB, source: str, details: bool) -> KandjiError | None:
    """Check the source's token for what a mapping needs and record what Kandji answered with
    the source, as `verify NAME` records its permissions; what Kandji refused, if it did."""
    info = sources.get_source(state, source)
    token = sources.get_source_token(state, info.name)
    try:
        report = asyncio.run(
            device_access(info.api_url, token, details, state.settings.allowed_hosts)
        )
    except KandjiError as exc:  # a token no Kandji token can be: nothing was asked
        return exc
    if report.check(TOKEN).ok:
        sources.record_permissions(state, info.name, report.granted_since(info.permissions))
    return access_refused(report)


def activate_mapping(
    runner: JobRunner, state: StateDB, spec: MappingSpec, *, verify: bool = True
) -> MappingInfo:
    """The Integrations flow's Save: create the mapping (a missing permission named as Kandji's
    token page names it) and start its first sync, whose outcome is in its run history."""
    mapping = create_mapping(state, spec, verify=verify, explain=_integration_wording)
    start_sync(runner, mapping)
    return mapping


def update_mapping(
    state: StateDB,
    name: str,
    update: MappingUpdate,
    *,
    verify: bool = True,
    explain: Callable[[KandjiError], str] = str,
) -> MappingInfo:
    """Edit a mapping: add, re-point or remove field pairs, change the identifier (its field must
    be unique), the schedule, what happens to removed devices, enable or disable it. Checked as
    a new mapping is, before anything changes; when the edit adds the first field read from the
    device details, the token is checked for that permission first (unless not `verify`)."""
    current = mappings.get_mapping(state, name)
    spec = mappings.edited_spec(current, update)
    valid = mappings.validate_mapping(state, spec, replacing=current.id)
    if verify and valid.needs_details and not current.needs_details:
        refused = _check_access(state, valid.source.name, True)
        if refused is not None:
            raise BridgeError(
                f"Mapping {valid.name} was not changed: {explain(refused)}"
            ) from refused
    enabled = current.enabled if update.enabled is None else update.enabled
    return mappings.save_edit(state, current, valid, enabled)


def remove_mapping(state: StateDB, name: str) -> None:
    """Delete the mapping and its sync history; its collection keeps every record it imported."""
    mappings.remove_mapping(state, name)


def start_sync(runner: JobRunner, mapping: MappingInfo) -> JobOutcome:
    """Sync the mapping now through its job: queued for serve's scheduler, or run in the caller
    by the InlineRunner. A failed sync is in its run history and job status; it is not raised."""
    return runner.trigger(status.mapping_job(mapping.id))


def preview_mapping(state: StateDB, name: str, progress: Progress | None = None) -> SyncReport:
    """A dry run: what a sync would create and update, field by field; nothing is written."""
    return asyncio.run(sync_mapping(state, name, dry_run=True, progress=progress))


def _integration_wording(exc: KandjiError) -> str:
    if isinstance(exc, PermissionDeniedError):
        return missing_permission(exc.permission)
    return str(exc)


def _mapping_exists(state: StateDB, name: str) -> bool:
    try:
        mappings.get_mapping(state, name)
    except NotFound:
        return False
    return True
