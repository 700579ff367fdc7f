"""A real chDB log store for the detection tests, one per test module (opening one costs time)."""

from collections.abc import Iterator

import pytest

from db.conftest import database_url, postgres_url, settings, state  # noqa: F401 (fixtures)
from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.logs.store import ChdbLogStore

FIXTURES = KANDJI_PACK  # the pack's fixtures ship with it, next to each rule


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbLogStore]:
    opened = ChdbLogStore(str(tmp_path_factory.mktemp("detections") / "logs"))
    opened.ensure_schema()
    yield opened
    opened.close()
