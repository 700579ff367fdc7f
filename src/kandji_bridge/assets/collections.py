"""Asset collections: a name and typed fields, any of them unique (`collection create/list`)."""

import shlex
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kandji_bridge.assets.convert import FieldType
from kandji_bridge.assets.names import check_name
from kandji_bridge.db.models import Collection, CollectionField, Record
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import AlreadyExists, BridgeError, NotFound

LABEL_MAX_LENGTH = 100  # the column's size
MAX_FIELDS = 200
TYPES = ", ".join(field_type.value for field_type in FieldType)


class InvalidCollection(BridgeError):
    """A collection definition (its fields) that cannot be used."""


@dataclass(frozen=True)
class FieldSpec:
    label: str
    type: FieldType
    unique: bool = False


@dataclass(frozen=True)
class FieldInfo:
    id: int
    label: str
    type: FieldType
    unique: bool


@dataclass(frozen=True)
class CollectionInfo:
    id: str
    name: str
    fields: tuple[FieldInfo, ...]
    created_at: datetime

    def field(self, label: str) -> FieldInfo:
        """The field with this label; case and surrounding spaces do not matter."""
        wanted = label.strip().casefold()
        for field in self.fields:
            if field.label.casefold() == wanted:
                return field
        labels = ", ".join(repr(field.label) for field in self.fields)
        raise NotFound(
            f"Collection {shlex.quote(self.name)} has no field {label.strip()!r}; "
            f"its fields are {labels}."
        )


@dataclass(frozen=True)
class CollectionSummary:
    collection: CollectionInfo
    records: dict[str, int]  # status ("active", "removed", "archived") -> count


def parse_field_spec(spec: str) -> FieldSpec:
    """'LABEL:TYPE[:unique]'. The label may itself hold colons: the type is read from the end."""
    parts = spec.split(":")
    unique = parts[-1].strip().lower() == "unique"
    if unique:
        parts.pop()
    if len(parts) < 2:
        raise InvalidCollection(
            f"The field {spec!r} has no type; write it as LABEL:TYPE or LABEL:TYPE:unique, "
            f"TYPE one of {TYPES}."
        )
    type_name = parts.pop().strip().lower()
    try:
        field_type = FieldType(type_name)
    except ValueError:
        raise InvalidCollection(
            f"The field {spec!r} has the type {type_name!r}; use one of {TYPES}."
        ) from None
    return FieldSpec(check_label(":".join(parts)), field_type, unique)


def create_collection(state: StateDB, name: str, fields: list[FieldSpec]) -> CollectionInfo:
    name = check_name("The collection name", name)
    if not fields:
        raise InvalidCollection(
            f"Collection {shlex.quote(name)} has no fields; give at least one with "
            "--field 'LABEL:TYPE[:unique]'."
        )
    if len(fields) > MAX_FIELDS:
        raise InvalidCollection(f"A collection has at most {MAX_FIELDS} fields, not {len(fields)}.")
    labels = [check_label(spec.label) for spec in fields]
    seen: set[str] = set()
    for label in labels:
        if label.casefold() in seen:
            raise InvalidCollection(
                f"The field label {label!r} is given twice; each field needs its own label."
            )
        seen.add(label.casefold())
    collection = Collection(name=name)
    try:
        with state.session() as session:
            if session.scalar(select(Collection.id).where(Collection.name == name)):
                raise already_exists(name)
            session.add(collection)
            session.flush()
            session.add_all(
                CollectionField(
                    collection_id=collection.id,
                    position=position,
                    label=label,
                    type=spec.type.value,
                    is_unique=spec.unique,
                )
                for position, (label, spec) in enumerate(zip(labels, fields, strict=True))
            )
    except IntegrityError:
        # Another process created the same name between our check and our insert.
        raise already_exists(name) from None
    return get_collection(state, name)


def get_collection(state: StateDB, name: str) -> CollectionInfo:
    with state.session() as session:
        return load_collection(session, find_collection(session, name))


def list_collections(state: StateDB) -> list[CollectionSummary]:
    with state.session() as session:
        collections = session.scalars(select(Collection).order_by(Collection.name)).all()
        counts: dict[str, dict[str, int]] = {}
        for collection_id, status, count in session.execute(
            select(Record.collection_id, Record.status, func.count()).group_by(
                Record.collection_id, Record.status
            )
        ):
            counts.setdefault(collection_id, {})[status] = count
        return [
            CollectionSummary(load_collection(session, collection), counts.get(collection.id, {}))
            for collection in collections
        ]


def summarize(state: StateDB, name: str) -> CollectionSummary:
    """The collection's fields and its records by status."""
    with state.session() as session:
        collection = find_collection(session, name)
        counts = dict(
            session.execute(
                select(Record.status, func.count())
                .where(Record.collection_id == collection.id)
                .group_by(Record.status)
            ).all()
        )
        return CollectionSummary(load_collection(session, collection), counts)


def find_collection(session: Session, name: str) -> Collection:
    collection = session.scalar(select(Collection).where(Collection.name == name.strip()))
    if collection is None:
        missing = f"No collection named {shlex.quote(name.strip())}; "
        raise NotFound(
            missing + "`kandji-bridge collection list` shows the names, "
            "`kandji-bridge collection create` makes one.",
            in_web=missing + "the Collections page lists them, and New collection there makes one.",
        )
    return collection


def load_collection(session: Session, collection: Collection) -> CollectionInfo:
    fields = session.scalars(
        select(CollectionField)
        .where(CollectionField.collection_id == collection.id)
        .order_by(CollectionField.position)
    )
    return CollectionInfo(
        id=collection.id,
        name=collection.name,
        fields=tuple(
            FieldInfo(field.id, field.label, FieldType(field.type), field.is_unique)
            for field in fields
        ),
        created_at=collection.created_at,
    )


def check_label(label: str) -> str:
    label = label.strip()
    if not label:
        raise InvalidCollection("A field label is empty; give each field a label, like 'Serial'.")
    if len(label) > LABEL_MAX_LENGTH:
        raise InvalidCollection(
            f"The field label {label[:20]!r}… is {len(label)} characters long; "
            f"use at most {LABEL_MAX_LENGTH}."
        )
    if not label.isprintable():
        raise InvalidCollection(
            f"The field label {label!r} contains control characters; use plain text."
        )
    return label


def already_exists(name: str) -> AlreadyExists:
    taken = f"A collection named {shlex.quote(name)} already exists; pick another name, "
    return AlreadyExists(
        taken + f"or see it with `kandji-bridge collection show {shlex.quote(name)}`.",
        in_web=taken + "or open that one from the Collections page.",
    )
