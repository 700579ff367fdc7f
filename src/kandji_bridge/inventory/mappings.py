"""Mappings: Kandji devices of a source into a collection, as Asset Panda describes them.

A mapping has a name, the external entity (Devices), a target collection, a unique identifier
(a Kandji field paired with a collection field marked unique), and any number of further pairs.
Everything that can be checked without Kandji is checked before anything is saved: the fields
exist, the identifier's target is unique, and every target type can hold its Kandji value.
"""

import shlex
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import CollectionInfo, FieldInfo
from kandji_bridge.assets.convert import can_hold, types_for
from kandji_bridge.assets.names import check_name
from kandji_bridge.db.models import Collection, Mapping, MappingField, Source, SyncRun
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import AlreadyExists, BridgeError, NotFound
from kandji_bridge.inventory.fields import (
    KandjiField,
    Suitability,
    get_field,
    identifier_fields,
)
from kandji_bridge.inventory.mapping_options import DEFAULT_SCHEDULE_MINUTES, OnRemoved
from kandji_bridge.inventory.runs import RunInfo, run_info
from kandji_bridge.source_registry import SourceInfo, get_source, source_info

ENTITIES = ("devices",)
SCHEDULE_RANGE = (1, 7 * 24 * 60)


class InvalidMapping(BridgeError):
    """A mapping definition that cannot work; nothing of it was saved."""


@dataclass(frozen=True)
class Pair:
    """'KANDJI_FIELD=COLLECTION_FIELD', as given."""

    kandji: str
    field: str


@dataclass(frozen=True)
class MappingSpec:
    name: str
    source: str
    collection: str
    identifier: Pair
    pairs: list[Pair] = field(default_factory=list)
    entity: str = "devices"
    on_removed: OnRemoved = OnRemoved.KEEP
    schedule_minutes: int = DEFAULT_SCHEDULE_MINUTES


@dataclass(frozen=True)
class MappedField:
    kandji: KandjiField
    field: FieldInfo
    is_identifier: bool = False


@dataclass(frozen=True)
class MappingInfo:
    id: str
    name: str
    source: SourceInfo
    entity: str
    collection: CollectionInfo
    fields: tuple[MappedField, ...]  # the identifier first
    on_removed: OnRemoved
    schedule_minutes: int
    created_at: datetime
    warnings: tuple[str, ...] = ()  # advice about the identifier, from Asset Panda's field table
    enabled: bool = True  # disabled: serve's scheduler does not sync it (Sync now still does)

    @property
    def identifier(self) -> MappedField:
        return self.fields[0]

    @property
    def needs_details(self) -> bool:
        return any(mapped.kandji.needs_details for mapped in self.fields)


@dataclass(frozen=True)
class MappingUpdate:
    """What an edit of a mapping changes; None or empty leaves that part as it is."""

    fields: tuple[Pair, ...] = ()  # added, or a collection field mapped from another Kandji field
    remove_fields: tuple[str, ...] = ()  # collection field labels no longer filled
    identifier: Pair | None = None
    enabled: bool | None = None
    schedule_minutes: int | None = None
    on_removed: OnRemoved | None = None


@dataclass(frozen=True)
class MappingSummary:
    mapping: MappingInfo
    last_run: RunInfo | None


def parse_pair(text: str) -> Pair:
    kandji, sep, label = text.partition("=")
    if not sep or not kandji.strip() or not label.strip():
        raise InvalidMapping(
            f"{text!r} is not a field pair; write KANDJI_FIELD=COLLECTION_FIELD, "
            "like serial_number=Serial."
        )
    return Pair(kandji.strip(), label.strip())


def validate_mapping(
    state: StateDB, spec: MappingSpec, *, replacing: str | None = None
) -> MappingInfo:
    """The mapping `spec` describes, checked against the catalog and the database, not saved.
    `replacing`: the id of the mapping an edit changes, which may keep its own name."""
    name = check_name("The mapping name", spec.name)
    if spec.entity.strip().lower() not in ENTITIES:
        raise InvalidMapping(
            f"The external entity {spec.entity!r} cannot be imported; Kandji mappings import "
            "devices (--entity devices)."
        )
    low, high = SCHEDULE_RANGE
    if not low <= spec.schedule_minutes <= high:
        raise InvalidMapping(
            f"The schedule must be {low} to {high} minutes, not {spec.schedule_minutes}."
        )
    on_removed = OnRemoved(spec.on_removed)
    source = get_source(state, spec.source)
    collection = collections.get_collection(state, spec.collection)
    with state.session() as session:
        holder = session.scalar(select(Mapping.id).where(Mapping.name == name))
        if holder is not None and holder != replacing:
            raise _already_exists(name)
    identifier = _identifier(collection, spec.identifier)
    fields = [identifier]
    for pair in spec.pairs:
        fields.append(_pair(collection, pair))
    taken: dict[int, MappedField] = {}
    for mapped in fields:
        earlier = taken.get(mapped.field.id)
        if earlier is not None:
            raise InvalidMapping(
                f"The collection field {mapped.field.label!r} is mapped twice (from "
                f"{earlier.kandji.key} and {mapped.kandji.key}); map each field once."
            )
        taken[mapped.field.id] = mapped
    return MappingInfo(
        id="",
        name=name,
        source=source,
        entity="devices",
        collection=collection,
        fields=tuple(fields),
        on_removed=on_removed,
        schedule_minutes=spec.schedule_minutes,
        created_at=datetime.now().astimezone(),
        warnings=_identifier_warnings(identifier.kandji),
    )


def save_mapping(state: StateDB, valid: MappingInfo) -> MappingInfo:
    """Save a mapping from validate_mapping, in one transaction: all of it or nothing."""
    mapping = Mapping(
        name=valid.name,
        source_id=valid.source.id,
        entity=valid.entity,
        collection_id=valid.collection.id,
        on_removed=valid.on_removed.value,
        schedule_minutes=valid.schedule_minutes,
    )
    try:
        with state.session() as session:
            if session.scalar(select(Mapping.id).where(Mapping.name == valid.name)):
                raise _already_exists(valid.name)
            session.add(mapping)
            session.flush()
            session.add_all(
                MappingField(
                    mapping_id=mapping.id,
                    field_id=mapped.field.id,
                    kandji_field=mapped.kandji.key,
                    is_identifier=mapped.is_identifier,
                    position=position,
                )
                for position, mapped in enumerate(valid.fields)
            )
    except IntegrityError:
        # Another process saved the same name, or removed the source or a field, meanwhile.
        raise InvalidMapping(
            f"Mapping {shlex.quote(valid.name)} was not saved: its name, source or collection "
            "changed while it was being saved; run the command again."
        ) from None
    return get_mapping(state, valid.name, warnings=valid.warnings)


def edited_spec(current: MappingInfo, update: MappingUpdate) -> MappingSpec:
    """The mapping as it would be after `update`. A new identifier's former field keeps being
    filled as an ordinary field, so an edit never silently stops filling a field."""
    old_identifier = Pair(current.identifier.kandji.key, current.identifier.field.label)
    pairs = [Pair(m.kandji.key, m.field.label) for m in current.fields[1:]]
    identifier = update.identifier or old_identifier
    if update.identifier is not None:
        pairs.insert(0, old_identifier)
    for label in update.remove_fields:
        wanted = label.strip().casefold()
        if identifier.field.strip().casefold() == wanted:
            raise InvalidMapping(
                f"{label.strip()!r} is the Unique Identifier of mapping "
                f"{shlex.quote(current.name)}; give the mapping another identifier before "
                "removing its field."
            )
        kept = [pair for pair in pairs if pair.field.strip().casefold() != wanted]
        if len(kept) == len(pairs):
            mapped = ", ".join(repr(pair.field) for pair in pairs) or "none besides the identifier"
            raise InvalidMapping(
                f"Mapping {shlex.quote(current.name)} does not fill the field {label.strip()!r}; "
                f"the fields it fills are {mapped}."
            )
        pairs = kept
    for pair in update.fields:
        target = pair.field.strip().casefold()
        pairs = [p for p in pairs if p.field.strip().casefold() != target] + [pair]
    target = identifier.field.strip().casefold()
    pairs = [pair for pair in pairs if pair.field.strip().casefold() != target]
    return MappingSpec(
        name=current.name,
        source=current.source.name,
        collection=current.collection.name,
        identifier=identifier,
        pairs=pairs,
        entity=current.entity,
        on_removed=update.on_removed or current.on_removed,
        schedule_minutes=update.schedule_minutes or current.schedule_minutes,
    )


def save_edit(
    state: StateDB, current: MappingInfo, valid: MappingInfo, enabled: bool
) -> MappingInfo:
    """Replace the mapping's settings and pairs with `valid`'s in one transaction. Its sync
    history and the records it filled stay."""
    with state.session() as session:
        mapping = session.get(Mapping, current.id)
        if mapping is None:
            raise NotFound(
                f"Mapping {shlex.quote(current.name)} was removed meanwhile; nothing was changed."
            )
        mapping.on_removed = valid.on_removed.value
        mapping.schedule_minutes = valid.schedule_minutes
        mapping.enabled = enabled
        session.execute(delete(MappingField).where(MappingField.mapping_id == mapping.id))
        session.add_all(
            MappingField(
                mapping_id=mapping.id,
                field_id=mapped.field.id,
                kandji_field=mapped.kandji.key,
                is_identifier=mapped.is_identifier,
                position=position,
            )
            for position, mapped in enumerate(valid.fields)
        )
    return get_mapping(state, current.name, warnings=valid.warnings)


def create_mapping(state: StateDB, spec: MappingSpec) -> MappingInfo:
    """Validate and save, without asking Kandji (access.check_device_access does that)."""
    return save_mapping(state, validate_mapping(state, spec))


def get_mapping(state: StateDB, name: str, warnings: tuple[str, ...] = ()) -> MappingInfo:
    with state.session() as session:
        mapping = session.scalar(select(Mapping).where(Mapping.name == name.strip()))
        if mapping is None:
            raise _not_found(name)
        return _load(session, mapping, warnings)


def remove_mapping(state: StateDB, name: str) -> None:
    """Delete a mapping and its sync history; the collection keeps every record it imported."""
    with state.session() as session:
        mapping = session.scalar(select(Mapping).where(Mapping.name == name.strip()))
        if mapping is None:
            raise _not_found(name)
        session.delete(mapping)


def list_mappings(state: StateDB) -> list[MappingSummary]:
    with state.session() as session:
        mappings = session.scalars(select(Mapping).order_by(Mapping.name)).all()
        latest = (
            select(SyncRun.mapping_id, func.max(SyncRun.started_at).label("started_at"))
            .group_by(SyncRun.mapping_id)
            .subquery()
        )
        runs = {
            run.mapping_id: run_info(run)
            for run in session.scalars(
                select(SyncRun).join(
                    latest,
                    (SyncRun.mapping_id == latest.c.mapping_id)
                    & (SyncRun.started_at == latest.c.started_at),
                )
            )
        }
        return [
            MappingSummary(_load(session, mapping), runs.get(mapping.id)) for mapping in mappings
        ]


def mapping_names(state: StateDB) -> dict[str, list[str]]:
    """collection id -> the names of the mappings that fill it, sorted."""
    names: dict[str, list[str]] = {}
    with state.session() as session:
        for collection_id, name in session.execute(
            select(Mapping.collection_id, Mapping.name).order_by(Mapping.name)
        ):
            names.setdefault(collection_id, []).append(name)
    return names


def due_mappings(state: StateDB, now: datetime) -> list[MappingInfo]:
    """The enabled mappings whose schedule says sync now: never synced, or last started that
    long ago."""
    return [
        summary.mapping
        for summary in list_mappings(state)
        if summary.mapping.enabled
        and (
            summary.last_run is None
            or summary.last_run.started_at + timedelta(minutes=summary.mapping.schedule_minutes)
            <= now
        )
    ]


def _load(session: Session, mapping: Mapping, warnings: tuple[str, ...] = ()) -> MappingInfo:
    collection = collections.load_collection(
        session, session.get_one(Collection, mapping.collection_id)
    )
    by_id = {field.id: field for field in collection.fields}
    pairs = session.scalars(
        select(MappingField)
        .where(MappingField.mapping_id == mapping.id)
        .order_by(MappingField.position)
    )
    source = session.get_one(Source, mapping.source_id)
    return MappingInfo(
        id=mapping.id,
        name=mapping.name,
        source=source_info(source),
        entity=mapping.entity,
        collection=collection,
        fields=tuple(
            MappedField(get_field(pair.kandji_field), by_id[pair.field_id], pair.is_identifier)
            for pair in pairs
        ),
        on_removed=OnRemoved(mapping.on_removed),
        schedule_minutes=mapping.schedule_minutes,
        created_at=mapping.created_at,
        warnings=warnings,
        enabled=mapping.enabled,
    )


def _identifier(collection: CollectionInfo, pair: Pair) -> MappedField:
    kandji = get_field(pair.kandji)
    if not kandji.can_identify:
        usable = ", ".join(
            f"{field.key} ({field.recommendation.lower()})" for field in identifier_fields()
        )
        why = (
            "comes from the device details call, which not every sync makes"
            if kandji.needs_details
            else f"cannot identify a device (usage recommendation: {kandji.recommendation})"
        )
        raise InvalidMapping(
            f"The Kandji field {kandji.key} {why}; identify devices by one of: {usable}."
        )
    target = collection.field(pair.field)
    if not target.unique:
        unique = [repr(field.label) for field in collection.fields if field.unique]
        which = (
            f"its unique fields are {', '.join(unique)}"
            if unique
            else "it has none, so create a collection with a field marked unique "
            "(--field 'Device ID:text:unique')"
        )
        raise InvalidMapping(
            f"The identifier must be mapped to a field marked unique, so that one device "
            f"matches one record, and {target.label!r} of collection "
            f"{shlex.quote(collection.name)} is not; {which}."
        )
    mapped = _pair(collection, pair, kandji, target)
    return MappedField(mapped.kandji, mapped.field, is_identifier=True)


def _pair(
    collection: CollectionInfo,
    pair: Pair,
    kandji: KandjiField | None = None,
    target: FieldInfo | None = None,
) -> MappedField:
    kandji = kandji or get_field(pair.kandji)
    target = target or collection.field(pair.field)
    if not can_hold(target.type, kandji.kind):
        raise InvalidMapping(
            f"The Kandji field {kandji.key} holds {kandji.kind.value} values, which the "
            f"{target.type.value} field {target.label!r} cannot hold; map it to a field of type "
            f"{' or '.join(types_for(kandji.kind))}."
        )
    return MappedField(kandji, target)


def _identifier_warnings(kandji: KandjiField) -> tuple[str, ...]:
    if kandji.suitability is Suitability.CONDITIONAL:
        return (
            f"{kandji.label}: {kandji.recommendation.lower()}; devices that share a value, or "
            "have none, are reported and left out. device_id is the recommended identifier.",
        )
    return ()


def _already_exists(name: str) -> AlreadyExists:
    taken = f"A mapping named {shlex.quote(name)} already exists; pick another name "
    return AlreadyExists(
        taken + "(`kandji-bridge mapping list` shows the mappings).",
        in_web=taken + "(the Mapping List of the Kandji integration shows the mappings).",
    )


def _not_found(name: str) -> NotFound:
    missing = f"No mapping named {shlex.quote(name.strip())}; "
    return NotFound(
        missing + "`kandji-bridge mapping list` shows the names.",
        in_web=missing + "the Mapping List of the Kandji integration shows the names.",
    )
