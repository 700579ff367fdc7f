"""Operations run against the real state DB (SQLite and PostgreSQL), chDB and the simulator."""

from db.conftest import database_url, postgres_url, settings, state  # noqa: F401 (fixtures)
from inventory.helpers import itam, source  # noqa: F401 (fixtures)
from service.helpers import runtime_for, store  # noqa: F401 (fixtures)
