"""Which record a mapping filled from which Kandji device (`mapped_devices`).

A sync reads a mapping's links before matching, and writes their changes in the same transaction
as the records they point at, so a record and its device's link are never out of step.
"""

from dataclasses import dataclass, field

from sqlalchemy import Table, and_, bindparam, delete, select, update
from sqlalchemy.orm import Session

from kandji_bridge.assets.records import bulk_insert
from kandji_bridge.db.models import MappedDevice, Mapping
from kandji_bridge.db.state import StateDB

_links: Table = MappedDevice.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class Link:
    record_id: str
    details_check_in: str | None  # the device's last_check_in when its details were last read


@dataclass(frozen=True, slots=True)
class LinkWrite:
    device_id: str
    record_id: str
    details_check_in: str | None


@dataclass
class LinkWrites:
    """One transaction's changes to a mapping's links."""

    mapping_id: str
    deletes: list[str] = field(default_factory=list)  # device ids whose link goes
    inserts: list[LinkWrite] = field(default_factory=list)
    updates: list[LinkWrite] = field(default_factory=list)

    def rows(self) -> int:
        return len(self.deletes) + len(self.inserts) + len(self.updates)


def load_links(session: Session, mapping_id: str) -> dict[str, Link]:
    """device id -> the record the mapping filled from it."""
    return {
        device_id: Link(record_id, check_in)
        for device_id, record_id, check_in in session.execute(
            select(_links.c.device_id, _links.c.record_id, _links.c.details_check_in).where(
                _links.c.mapping_id == mapping_id
            )
        )
    }


def write_links(session: Session, writes: LinkWrites) -> None:
    """Deletes first: a record a vanished device leaves is free for the device taking it over."""
    connection = session.connection()
    same_link = and_(
        _links.c.mapping_id == bindparam("mid"), _links.c.device_id == bindparam("did")
    )
    if writes.deletes:
        connection.execute(
            delete(_links).where(same_link),
            [{"mid": writes.mapping_id, "did": device_id} for device_id in writes.deletes],
        )
    bulk_insert(
        connection,
        _links,
        [
            {
                "mapping_id": writes.mapping_id,
                "device_id": link.device_id,
                "record_id": link.record_id,
                "details_check_in": link.details_check_in,
            }
            for link in writes.inserts
        ],
    )
    if writes.updates:
        connection.execute(
            update(_links)
            .where(same_link)
            .values(record_id=bindparam("rec"), details_check_in=bindparam("check_in")),
            [
                {
                    "mid": writes.mapping_id,
                    "did": link.device_id,
                    "rec": link.record_id,
                    "check_in": link.details_check_in,
                }
                for link in writes.updates
            ],
        )


def record_device(state: StateDB, record_id: str) -> tuple[str, str] | None:
    """(device id, mapping name) of the device a record was imported from, if any."""
    with state.session() as session:
        row = session.execute(
            select(MappedDevice.device_id, Mapping.name)
            .join(Mapping, Mapping.id == MappedDevice.mapping_id)
            .where(MappedDevice.record_id == record_id)
            .order_by(Mapping.name)
            .limit(1)
        ).first()
    return (row[0], row[1]) if row else None
