"""Every device-import test that touches the database runs on SQLite and on PostgreSQL."""

from db.conftest import database_url, postgres_url, settings, state  # noqa: F401 (fixtures)

from .helpers import itam, source  # noqa: F401 (fixtures)
