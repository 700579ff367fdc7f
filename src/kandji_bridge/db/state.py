"""The state database as the product uses it: migrated, with sessions and the workspace id."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy import Engine, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kandji_bridge.config import Settings, ensure_home
from kandji_bridge.db.engine import database_error, make_engine, session_factory
from kandji_bridge.db.models import Workspace
from kandji_bridge.db.schema import migrate


@dataclass(frozen=True)
class StateDB:
    # Out of repr: the settings hold the secret key and perhaps a database password.
    settings: Settings = field(repr=False)
    engine: Engine
    sessions: sessionmaker[Session]
    workspace_id: str

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises.

        A lost connection, a locked or read-only file becomes a ConfigError a user can act on.
        """
        try:
            with self.sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as exc:
            raise database_error(self.settings.database_url, exc) from exc

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "StateDB":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_state(settings: Settings) -> StateDB:
    """Create the home if needed, bring the schema up to date, and connect."""
    ensure_home(settings)
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    try:
        with sessions.begin() as session:
            workspace_id = session.scalars(select(Workspace.id)).one()
    except (OperationalError, InterfaceError) as exc:
        engine.dispose()
        raise database_error(settings.database_url, exc) from exc
    return StateDB(settings, engine, sessions, workspace_id)
