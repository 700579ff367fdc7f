"""Collections: typed fields, unique ones enforced by the database, clear refusals."""

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import (
    CollectionInfo,
    FieldSpec,
    InvalidCollection,
    parse_field_spec,
)
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.assets.names import InvalidName
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import Record, RecordKey
from kandji_bridge.errors import AlreadyExists, NotFound


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("Serial:text:unique", FieldSpec("Serial", FieldType.TEXT, True)),
        ("Serial:text", FieldSpec("Serial", FieldType.TEXT, False)),
        (" Last Check In : datetime ", FieldSpec("Last Check In", FieldType.DATETIME, False)),
        ("Capacity (GB):NUMBER", FieldSpec("Capacity (GB)", FieldType.NUMBER, False)),
        ("Time: local:date:UNIQUE", FieldSpec("Time: local", FieldType.DATE, True)),
        ("Tags:list", FieldSpec("Tags", FieldType.LIST, False)),
        ("On:boolean", FieldSpec("On", FieldType.BOOLEAN, False)),
    ],
)
def test_field_specs(spec: str, parsed: FieldSpec) -> None:
    assert parse_field_spec(spec) == parsed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Serial", "The field 'Serial' has no type; write it as LABEL:TYPE or LABEL:TYPE:unique, "
         "TYPE one of text, number, boolean, date, datetime, list."),
        ("Serial:string", "The field 'Serial:string' has the type 'string'; use one of text, "
         "number, boolean, date, datetime, list."),
        (":text", "A field label is empty; give each field a label, like 'Serial'."),
        ("Serial:unique", "The field 'Serial:unique' has no type"),
    ],
)  # fmt: skip
def test_bad_field_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidCollection) as caught:
        parse_field_spec(spec)
    assert str(caught.value).startswith(message)


def test_create_list_and_show(state: StateDB, itam: CollectionInfo) -> None:
    assert itam.name == "ITAM"
    assert [(f.label, f.type, f.unique) for f in itam.fields[:3]] == [
        ("Device ID", FieldType.TEXT, True),
        ("Serial", FieldType.TEXT, True),
        ("Asset Tag", FieldType.TEXT, True),
    ]
    assert itam.field(" serial ").label == "Serial"
    summaries = collections.list_collections(state)
    assert [(s.collection.name, s.records) for s in summaries] == [("ITAM", {})]
    assert collections.summarize(state, "ITAM").collection == itam


def test_refusals_create_nothing(state: StateDB, itam: CollectionInfo) -> None:
    cases = [
        ("ITAM", [FieldSpec("X", FieldType.TEXT)], AlreadyExists,
         "A collection named ITAM already exists; pick another name, or see it with "
         "`kandji-bridge collection show ITAM`."),
        ("Empty", [], InvalidCollection,
         "Collection Empty has no fields; give at least one with --field 'LABEL:TYPE[:unique]'."),
        ("Twice", [FieldSpec("Serial", FieldType.TEXT), FieldSpec("serial", FieldType.TEXT)],
         InvalidCollection,
         "The field label 'serial' is given twice; each field needs its own label."),
        ("a/b", [FieldSpec("X", FieldType.TEXT)], InvalidName,
         "The collection name contains '/'; use only letters, digits, spaces, dashes (-), "
         "underscores (_) and dots (.)."),
    ]  # fmt: skip
    for name, fields, error, message in cases:
        with pytest.raises(error) as caught:
            collections.create_collection(state, name, fields)
        assert str(caught.value) == message
    assert [s.collection.name for s in collections.list_collections(state)] == ["ITAM"]


def test_unknown_names_are_refused_with_what_exists(state: StateDB, itam: CollectionInfo) -> None:
    with pytest.raises(NotFound) as caught:
        collections.get_collection(state, "Assets")
    assert str(caught.value) == (
        "No collection named Assets; `kandji-bridge collection list` shows the names, "
        "`kandji-bridge collection create` makes one."
    )
    with pytest.raises(NotFound) as caught:
        itam.field("Serial No")
    assert str(caught.value).startswith(
        "Collection ITAM has no field 'Serial No'; its fields are 'Device ID', 'Serial', "
    )


def test_the_database_refuses_a_second_record_with_a_unique_value(
    state: StateDB, itam: CollectionInfo
) -> None:
    serial = itam.field("Serial")
    with state.session() as session:
        session.execute(
            insert(Record),
            [{"id": "r1", "collection_id": itam.id}, {"id": "r2", "collection_id": itam.id}],
        )
        session.execute(
            insert(RecordKey), {"field_id": serial.id, "value": '"S1"', "record_id": "r1"}
        )
    with pytest.raises(IntegrityError), state.session() as session:
        session.execute(
            insert(RecordKey), {"field_id": serial.id, "value": '"S1"', "record_id": "r2"}
        )
