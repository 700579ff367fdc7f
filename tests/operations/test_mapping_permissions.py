"""Saving a mapping records what its source's token may do, as `verify NAME` does: the Sources
pages and the Integrations pages read those permissions."""

import dataclasses

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.assets.collections import CollectionInfo
from kandji_bridge.db import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.inventory.mappings import MappingSpec, MappingUpdate, parse_pair
from kandji_bridge.operations import mappings as operation
from kandji_bridge.operations.connection import uses_of


def test_saving_a_mapping_records_the_permissions_its_check_found(
    state: StateDB, itam: CollectionInfo, simulator_factory
) -> None:
    sim = simulator_factory(devices=3, events=1, tokens={"t": frozenset({"audit", "devices"})})
    state = dataclasses.replace(
        state,
        settings=dataclasses.replace(state.settings, allowed_hosts=frozenset({sim.host_port})),
    )
    # Verified when the token could only read audit events; Device list was granted since.
    sources.add_source(state, "acme", sim.base_url, "t", permissions=("audit",))

    spec = MappingSpec(
        name="devices",
        source="acme",
        collection="ITAM",
        identifier=parse_pair("device_id=Device ID"),
        pairs=[parse_pair("serial_number=Serial")],
    )
    operation.create_mapping(state, spec)
    assert sources.get_source(state, "acme").permissions == ("audit", "devices")
    # What the Sources page and GET /api/sources show for it.
    assert uses_of(state, "acme").permission_labels == ["List audit events", "Device list"]

    # Recorded once as able to read details, the token lost that permission: an edit that needs
    # it is refused, and the source no longer claims it.
    sources.record_permissions(state, "acme", ("audit", "devices", "details"))
    details = MappingUpdate(fields=(parse_pair("boot_volume_capacity_gb=Capacity GB"),))
    with pytest.raises(BridgeError, match="Device details"):
        operation.update_mapping(state, "devices", details)
    assert sources.get_source(state, "acme").permissions == ("audit", "devices")
