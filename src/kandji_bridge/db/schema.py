"""Bringing the state database's tables up to date: Alembic, run from code (no alembic.ini)."""

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from kandji_bridge.config import ENV_DATABASE_URL
from kandji_bridge.db.engine import database_error, make_engine, mask_url
from kandji_bridge.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number, the same in every process: the PostgreSQL advisory lock held while migrating.
MIGRATION_LOCK_ID = 0x6B62_6D69
# Alembic keeps the running migration's context in module globals: one migration per process.
_process_lock = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code; env.py runs on `connection` when one is given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def migrate(database_url: str) -> None:
    """Upgrade the state database to the newest schema. Safe to repeat and to run concurrently.

    Everything happens in one transaction that first takes a lock (SQLite: the write lock, via
    BEGIN IMMEDIATE; PostgreSQL: an advisory lock), so a second process starting at the same time
    waits, then finds the schema current and does nothing.
    """
    engine = make_engine(database_url)
    try:
        with _process_lock, engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
            command.upgrade(alembic_config(connection), "head")
            # A write that changes nothing: a read-only file or replica fails here, clearly,
            # instead of at the first save.
            connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
    except DBAPIError as exc:
        raise database_error(database_url, exc) from exc
    except CommandError as exc:
        if "Can't locate revision" not in str(exc):
            raise
        raise ConfigError(
            f"The state database {mask_url(database_url)} was written by a newer kandji-bridge; "
            f"upgrade kandji-bridge, or point {ENV_DATABASE_URL} at another database."
        ) from exc
    finally:
        engine.dispose()
