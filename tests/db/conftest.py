"""State-DB fixtures: every test that touches the database runs on SQLite and on PostgreSQL.

Each PostgreSQL test gets a schema of its own (selected through the URL's search_path), dropped
afterwards, so tests never see each other's tables.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from kandji_bridge.config import Settings, load_settings
from kandji_bridge.db import StateDB, open_state
from kandji_bridge.db.engine import parse_url

from .postgres import require_postgres


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new, empty schema; the schema is dropped after."""
    base = parse_url(require_postgres(request.config))
    schema = f"kb_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        url = base.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty state database: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def settings(home: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("KANDJI_BRIDGE_DATABASE_URL", database_url)
    return load_settings()


@pytest.fixture
def state(settings: Settings) -> Iterator[StateDB]:
    with open_state(settings) as opened:
        yield opened
