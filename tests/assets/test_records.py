"""Typed record writes: new records, changed values and statuses, with their keys and history."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kandji_bridge.assets import records
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import RecordChange, RecordKey


def write(state: StateDB, writes: records.RecordWrites) -> None:
    with state.session() as session:
        records.write_records(session, writes)


def test_an_update_frees_the_old_unique_value_and_records_each_change(
    state: StateDB, itam: CollectionInfo
) -> None:
    serial, name = itam.field("Serial"), itam.field("Name")
    now = datetime.now(UTC)
    first, second = records.new_record_id(), records.new_record_id()
    writes = records.RecordWrites(itam, (), None, now)
    writes.insert(first, records.ACTIVE, {serial.id: "C02A", name.id: "Mac"})
    write(state, writes)
    assert [(c.field_id, c.value, c.record_id) for c in writes.claims] == [
        (serial.id, '"C02A"', first)
    ]

    with state.session() as session:
        stored = records.load_stored(session, [first])[first]
    writes = records.RecordWrites(itam, (), None, now)
    writes.update(first, stored, records.ACTIVE, {serial.id: "C02B", name.id: "Mac"}, [serial])
    writes.insert(second, records.ACTIVE, {serial.id: "C02A"})  # the value the update freed
    write(state, writes)

    with state.session() as session:
        held = dict(session.execute(select(RecordKey.value, RecordKey.record_id)).all())
        changes = session.execute(
            select(RecordChange.field_id, RecordChange.old_value, RecordChange.new_value)
        ).all()
        assert records.load_stored(session, [first])[first].values[serial.id] == "C02B"
    assert held == {'"C02B"': first, '"C02A"': second}
    assert changes == [(serial.id, '"C02A"', '"C02B"')]


def test_a_status_change_is_history_and_a_taken_unique_value_is_refused(
    state: StateDB, itam: CollectionInfo
) -> None:
    serial = itam.field("Serial")
    now = datetime.now(UTC)
    record_id = records.new_record_id()
    writes = records.RecordWrites(itam, (), None, now)
    writes.insert(record_id, records.ACTIVE, {serial.id: "C02A"})
    write(state, writes)
    with state.session() as session:
        stored = records.load_stored(session, [record_id])[record_id]
    writes = records.RecordWrites(itam, (), None, now)
    writes.set_status(record_id, stored, records.ARCHIVED)
    write(state, writes)
    with state.session() as session:
        assert records.load_stored(session, [record_id])[record_id].status == records.ARCHIVED
        assert session.execute(
            select(RecordChange.field_id, RecordChange.old_value, RecordChange.new_value)
        ).all() == [(None, '"active"', '"archived"')]

    taken = records.RecordWrites(itam, (), None, now)
    taken.insert(records.new_record_id(), records.ACTIVE, {serial.id: "C02A"})
    with pytest.raises(IntegrityError):
        write(state, taken)
