"""A real chDB log store for the detection tests, one per test module (opening one costs time)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from db.conftest import database_url, postgres_url, settings, state  # noqa: F401 (fixtures)
from kandji_bridge.logs.store import ChdbLogStore

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbLogStore]:
    opened = ChdbLogStore(str(tmp_path_factory.mktemp("detections") / "logs"))
    opened.ensure_schema()
    yield opened
    opened.close()
