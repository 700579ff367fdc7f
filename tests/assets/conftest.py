"""Every asset-store test that touches the database runs on SQLite and on PostgreSQL."""

import pytest

from db.conftest import database_url, postgres_url, settings, state  # noqa: F401 (fixtures)
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import CollectionInfo, parse_field_spec
from kandji_bridge.db import StateDB

ITAM_FIELDS = (
    "Device ID:text:unique",
    "Serial:text:unique",
    "Asset Tag:text:unique",
    "Name:text",
    "Tags:list",
    "Last Check In:datetime",
    "Missing:boolean",
)


@pytest.fixture
def itam(state: StateDB) -> CollectionInfo:  # noqa: F811 (the state fixture)
    """An IT asset collection with unique and typed fields, as devices would fill it."""
    return collections.create_collection(
        state, "ITAM", [parse_field_spec(spec) for spec in ITAM_FIELDS]
    )
