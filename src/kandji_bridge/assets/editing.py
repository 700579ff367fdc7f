"""Editing a collection: rename it, add or remove fields, let a unique field's values repeat,
delete it. Each in one transaction; what a change would break elsewhere (a mapping) is the
caller's to check first."""

import shlex
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kandji_bridge.assets.collections import (
    MAX_FIELDS,
    CollectionInfo,
    FieldSpec,
    InvalidCollection,
    already_exists,
    check_label,
    find_collection,
    get_collection,
    load_collection,
)
from kandji_bridge.assets.keys import search_text
from kandji_bridge.assets.names import check_name
from kandji_bridge.assets.records import decode_data, encode_data
from kandji_bridge.db.models import Collection, CollectionField, Record, RecordKey, RecordSortKey
from kandji_bridge.db.state import StateDB


@dataclass(frozen=True)
class CollectionEdit:
    """What an edit of a collection changes; None or empty leaves that part as it is."""

    rename: str | None = None
    add_fields: tuple[FieldSpec, ...] = ()
    remove_fields: tuple[str, ...] = ()  # labels; their values leave every record
    not_unique: tuple[str, ...] = ()  # labels whose values may repeat from now on


def edit_collection(state: StateDB, name: str, edit: CollectionEdit) -> CollectionInfo:
    """Apply `edit` in one transaction: all of it or nothing."""
    new_name = check_name("The collection name", edit.rename) if edit.rename else None
    added = [check_label(spec.label) for spec in edit.add_fields]
    try:
        with state.session() as session:
            collection = find_collection(session, name)
            info = load_collection(session, collection)
            removed = {info.field(label).id for label in edit.remove_fields}
            loosened = {info.field(label).id for label in edit.not_unique}
            kept = [field for field in info.fields if field.id not in removed]
            taken = {field.label.casefold() for field in kept}
            for label in added:
                if label.casefold() in taken:
                    raise InvalidCollection(
                        f"Collection {shlex.quote(info.name)} already has a field {label!r}; "
                        "give the new field another label."
                    )
                taken.add(label.casefold())
            if len(kept) + len(added) > MAX_FIELDS:
                raise InvalidCollection(f"A collection has at most {MAX_FIELDS} fields.")
            if not kept and not added:
                raise InvalidCollection(
                    f"Collection {shlex.quote(info.name)} would have no fields left; keep at "
                    "least one."
                )
            if new_name and new_name != collection.name:
                holder = session.scalar(select(Collection.id).where(Collection.name == new_name))
                if holder is not None:
                    raise already_exists(new_name)
                collection.name = new_name
            if removed:
                # Sort keys have no foreign key (see RecordSortKey); unique keys and the
                # fields' history go with the field.
                session.execute(delete(RecordSortKey).where(RecordSortKey.field_id.in_(removed)))
                session.execute(delete(CollectionField).where(CollectionField.id.in_(removed)))
                _drop_values(session, collection.id, removed)
            if loosened:
                session.execute(delete(RecordKey).where(RecordKey.field_id.in_(loosened)))
                session.execute(
                    update(CollectionField)
                    .where(CollectionField.id.in_(loosened))
                    .values(is_unique=False)
                )
            last = max(
                (field.position for field in _field_rows(session, collection.id)), default=-1
            )
            session.add_all(
                CollectionField(
                    collection_id=collection.id,
                    position=last + 1 + offset,
                    label=label,
                    type=spec.type.value,
                    is_unique=spec.unique,
                )
                for offset, (label, spec) in enumerate(zip(added, edit.add_fields, strict=True))
            )
            final_name = collection.name
    except IntegrityError:
        raise InvalidCollection(
            f"Collection {shlex.quote(name.strip())} was not changed: its name or fields changed "
            "meanwhile; try again."
        ) from None
    return get_collection(state, final_name)


def delete_collection(state: StateDB, name: str) -> None:
    """Delete the collection with its fields, records and their history."""
    try:
        with state.session() as session:
            collection = find_collection(session, name)
            field_ids = select(CollectionField.id).where(
                CollectionField.collection_id == collection.id
            )
            session.execute(delete(RecordSortKey).where(RecordSortKey.field_id.in_(field_ids)))
            session.delete(collection)
    except IntegrityError:
        # A mapping was saved into it meanwhile (mappings.collection_id is RESTRICT).
        raise InvalidCollection(
            f"Collection {shlex.quote(name.strip())} was not deleted: a mapping imports into it; "
            "remove that mapping first."
        ) from None


def _drop_values(session: Session, collection_id: str, field_ids: set[int]) -> None:
    """Take removed fields' values out of every record and its search text: a field added later
    may get a removed one's id, and must start empty."""
    for record in session.scalars(select(Record).where(Record.collection_id == collection_id)):
        values = decode_data(record.data)
        if field_ids & values.keys():
            kept = {field_id: v for field_id, v in values.items() if field_id not in field_ids}
            record.data = encode_data(kept)
            record.search = search_text(kept)


def _field_rows(session: Session, collection_id: str) -> list[CollectionField]:
    return list(
        session.scalars(
            select(CollectionField).where(CollectionField.collection_id == collection_id)
        )
    )
