"""Migrations: from empty to head, repeatable, concurrent, and in step with the models."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

import kandji_bridge
from kandji_bridge import users
from kandji_bridge.assets import browse, collections
from kandji_bridge.config import Settings
from kandji_bridge.db import make_engine, migrate, open_state
from kandji_bridge.db.models import Base
from kandji_bridge.db.schema import alembic_config
from kandji_bridge.errors import ConfigError
from kandji_bridge.jobs import leases

COLLECTION_ID = "7ea5cfd9-cb5c-4ec0-a659-942c11b7f4e5"
SRC = str(Path(kandji_bridge.__file__).resolve().parents[1])


def snapshot(engine: Engine) -> dict:
    """Tables, columns, the Alembic revision and the workspace rows: what a migration changes."""
    inspector = inspect(engine)
    with engine.connect() as connection:
        return {
            "tables": {
                table: [column["name"] for column in inspector.get_columns(table)]
                for table in sorted(inspector.get_table_names())
            },
            "revision": connection.scalar(text("SELECT version_num FROM alembic_version")),
            "workspaces": connection.execute(text("SELECT id, created_at FROM workspace")).all(),
        }


def test_migrate_from_empty_creates_the_schema_and_one_workspace(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        state = snapshot(engine)
    finally:
        engine.dispose()
    assert set(state["tables"]) == {"alembic_version", *Base.metadata.tables}
    assert state["revision"] == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert len(state["workspaces"]) == 1


def test_migrating_again_changes_nothing(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        before = snapshot(engine)
        migrate(database_url)
        migrate(database_url)
        assert snapshot(engine) == before
    finally:
        engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_workspace_id_is_stable_across_opens(settings: Settings) -> None:
    with open_state(settings) as first:
        workspace_id = first.workspace_id
    with open_state(settings) as second:
        assert second.workspace_id == workspace_id
    assert len(workspace_id) == 36


# Each process announces itself once imported, waits until all have, then migrates: a real race.
RACER = """
import sys, time
from pathlib import Path
from kandji_bridge.db import migrate
url, gate, count = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
(gate / str(time.monotonic_ns())).touch()
while len(list(gate.iterdir())) < count:
    time.sleep(0.005)
migrate(url)
"""


def test_processes_migrating_a_new_database_at_once_all_succeed(
    database_url: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    command = [sys.executable, "-c", RACER, database_url, str(gate), "2"]
    env = {**os.environ, "PYTHONPATH": SRC}
    processes = [
        subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    errors = [process.communicate(timeout=60)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    engine = make_engine(database_url)
    try:
        assert len(snapshot(engine)["workspaces"]) == 1
    finally:
        engine.dispose()


def test_a_database_from_a_newer_version_is_refused(database_url: str) -> None:
    migrate(database_url)
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(ConfigError, match="written by a newer kandji-bridge"):
        migrate(database_url)


def test_sqlite_is_set_up_for_several_processes(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 15_000
    finally:
        engine.dispose()


def test_records_stored_before_the_sort_keys_are_searched_and_sorted_after(
    database_url: str, settings: Settings
) -> None:
    """0004 fills the search text of every record, and sort keys for the fields that had a
    sort index (made by pages before it), whose index it drops."""
    engine = make_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0003")
        now = datetime.now(UTC)
        connection.execute(
            text("INSERT INTO collections (id, name, created_at) VALUES (:id, 'ITAM', :now)"),
            {"id": COLLECTION_ID, "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO collection_fields (id, collection_id, position, label, type, "
                "is_unique) VALUES (:id, :collection, :id, :label, :type, :unique)"
            ),
            [
                {"id": 1, "collection": COLLECTION_ID, "label": "Serial", "type": "text",
                 "unique": True},
                {"id": 2, "collection": COLLECTION_ID, "label": "Disk GB", "type": "number",
                 "unique": False},
            ],
        )  # fmt: skip
        connection.execute(
            text(
                "INSERT INTO records (id, collection_id, status, data, created_at, updated_at) "
                "VALUES (:id, :collection, 'active', :data, :now, :now)"
            ),
            [
                {"id": f"0000000{number}-0000-7000-8000-000000000000", "collection": COLLECTION_ID,
                 "data": data, "now": now}
                for number, data in enumerate(
                    ['{"1":"C02B","2":100}', '{"1":"C02A","2":9.5}', '{"1":"X1"}']
                )
            ],
        )  # fmt: skip
        connection.execute(text("CREATE INDEX ix_records_sort_2 ON records (collection_id)"))
    engine.dispose()

    with open_state(settings) as state:
        collection = collections.get_collection(state, "ITAM")
        with state.session() as session:
            rows = session.execute(text("SELECT id, has_sort_keys FROM collection_fields"))
            flags = {field_id: bool(flag) for field_id, flag in rows}
            keys = session.scalar(text("SELECT count(*) FROM record_sort_keys"))
            indexes = {
                index["name"] for index in inspect(session.connection()).get_indexes("records")
            }
        assert (flags, keys) == ({1: False, 2: True}, 3)
        assert "ix_records_sort_2" not in indexes

        def serials(**query) -> list[str]:
            page = browse.page_records(state, collection, **query)
            return [row.values[1] for row in page.rows]

        assert serials(sort_field="Disk GB") == ["X1", "C02A", "C02B"]  # empty first
        assert serials(search="c02", sort_field="Disk GB", descending=True) == ["C02B", "C02A"]
        assert serials(sort_field="Serial") == ["C02A", "C02B", "X1"]  # its keys made now


def test_tokens_made_before_scopes_keep_working_as_admin_tokens(
    database_url: str, settings: Settings
) -> None:
    """0005 gives the tokens that could do everything the `admin` scope, and leaves the job
    leases of older versions (no host recorded) to run out as before."""
    token = "kbt_made-by-an-older-version-0123456789abcdef"
    engine = make_engine(database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004")
        now = datetime.now(UTC)
        connection.execute(
            text(
                "INSERT INTO users (id, username, password_hash, is_admin, created_at) "
                "VALUES ('u1', 'ops', 'x', :yes, :now)"
            ),
            {"yes": True, "now": now},
        )
        connection.execute(
            text(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at) "
                "VALUES ('t1', 'u1', 'terraform', :hash, 'kbt_made', :now)"
            ),
            {"hash": users.digest(token), "now": now},
        )
        connection.execute(
            text("INSERT INTO job_leases (job, holder, expires_at) VALUES ('source:s1', 'h', :t)"),
            {"t": now + timedelta(minutes=5)},
        )
    engine.dispose()

    with open_state(settings) as state:
        found = users.token_user(state, token)
        assert found is not None and found.user.username == "ops" and found.scope == "admin"
        assert [t.scope for t in users.list_api_tokens(state, "ops")] == ["admin"]
        assert users.token_user(state, users.create_api_token(state, "ops", "dash")).scope == "read"
        assert not leases.acquire(state, "source:s1", "new", ttl=30), "an old lease was dropped"
        with state.session() as session:
            row = session.execute(text("SELECT host, pid FROM job_leases")).one()
        assert tuple(row) == (None, None)
