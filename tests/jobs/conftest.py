"""Every jobs test that touches the state DB runs on SQLite and on PostgreSQL."""

from db.conftest import database_url, postgres_url, settings, state  # noqa: F401 (fixtures)
from service.helpers import runtime_for, store  # noqa: F401 (fixtures)
