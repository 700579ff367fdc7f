"""Device-import test helpers: a simulated tenant as a source, a collection, row counts."""

import asyncio
import dataclasses
import os
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import CollectionInfo, parse_field_spec
from kandji_bridge.config import ENV_ALLOWED_HOSTS, parse_allowed_hosts
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import (
    MappedDevice,
    Record,
    RecordChange,
    RecordKey,
    RecordSortKey,
    SyncRun,
)
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingInfo, MappingSpec, OnRemoved, parse_pair
from kandji_bridge.inventory.sync import SyncReport, sync_mapping
from kandji_bridge.simulator.server import RunningSimulator
from kandji_bridge.simulator.tenant import Device

ITAM_FIELDS = (
    "Device ID:text:unique",
    "Serial:text:unique",
    "Asset Tag:text:unique",
    "Name:text",
    "Tags:list",
    "Last Check In:datetime",
    "Missing:boolean",
    "User Email:text",
    "Model Identifier:text",
    "Capacity GB:number",
)


@pytest.fixture
def source(state: StateDB, allow_simulator: RunningSimulator) -> str:
    """The simulator registered as source `sim` (its token has every permission)."""
    sources.add_source(state, "sim", allow_simulator.base_url, allow_simulator.token)
    return "sim"


@pytest.fixture
def itam(state: StateDB) -> CollectionInfo:
    return collections.create_collection(
        state, "ITAM", [parse_field_spec(spec) for spec in ITAM_FIELDS]
    )


def make_mapping(
    state: StateDB,
    identifier: str = "device_id=Device ID",
    fields: tuple[str, ...] = ("serial_number=Serial", "device_name=Name"),
    name: str = "devices",
    source: str = "sim",
    collection: str = "ITAM",
    on_removed: OnRemoved = OnRemoved.KEEP,
) -> MappingInfo:
    spec = MappingSpec(
        name=name,
        source=source,
        collection=collection,
        identifier=parse_pair(identifier),
        pairs=[parse_pair(pair) for pair in fields],
        on_removed=on_removed,
    )
    return mappings.create_mapping(state, spec)


def sync(state: StateDB, name: str = "devices", **options: Any) -> SyncReport:
    """A sync with the state's settings as a process started now would load them: fixtures open
    the state before `allow_simulator` lists the simulator's host in the environment."""
    allowed = parse_allowed_hosts(os.environ.get(ENV_ALLOWED_HOSTS))
    settings = dataclasses.replace(state.settings, allowed_hosts=allowed)
    return asyncio.run(sync_mapping(dataclasses.replace(state, settings=settings), name, **options))


def row_counts(state: StateDB) -> dict[str, int]:
    """Rows in each device-import table: what a sync wrote."""
    with state.session() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Record, RecordKey, RecordSortKey, RecordChange, MappedDevice, SyncRun)
        }


def edit_device(
    simulator: RunningSimulator, index: int, change: Callable[[Device], None]
) -> Device:
    """Change a simulated device in place, under the simulator's lock."""
    with simulator.state.lock:
        device = simulator.devices[index]
        change(device)
        return device


def drop_device(simulator: RunningSimulator, index: int) -> Device:
    """The device leaves the tenant, as one deleted in Kandji does."""
    tenant = simulator.tenant
    with simulator.state.lock:
        device = tenant.devices.pop(index)
        del tenant.devices_by_id[device.device_id]
        tenant.devices_in_id_order.remove(device)
        return device


def restore_device(simulator: RunningSimulator, device: Device) -> None:
    tenant = simulator.tenant
    with simulator.state.lock:
        tenant.devices.append(device)
        tenant.devices_by_id[device.device_id] = device
        tenant.devices_in_id_order.append(device)
        tenant.devices_in_id_order.sort(key=lambda d: d.device_id)
