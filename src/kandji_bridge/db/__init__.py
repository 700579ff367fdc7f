"""The state database: SQLite by default, PostgreSQL for scale; Alembic keeps its schema current."""

from kandji_bridge.db.engine import make_engine, mask_url, session_factory
from kandji_bridge.db.schema import migrate
from kandji_bridge.db.state import StateDB, open_state

__all__ = ["StateDB", "make_engine", "mask_url", "migrate", "open_state", "session_factory"]
