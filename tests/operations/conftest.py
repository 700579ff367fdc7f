"""Operations run against the real state DB (SQLite and PostgreSQL), chDB and the simulator."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from db.conftest import database_url, postgres_url, settings, state  # noqa: F401 (fixtures)
from inventory.helpers import itam, source  # noqa: F401 (fixtures)
from kandji_bridge.logs.store import ChdbLogStore


@pytest.fixture
def chdb_store(tmp_path: Path) -> Iterator[ChdbLogStore]:
    store = ChdbLogStore(str(tmp_path / "logs"))
    store.ensure_schema()
    yield store
    store.close()
