"""Alembic environment: runs on the connection that kandji_bridge.db.schema.migrate hands over."""

from typing import Any

from alembic import context
from sqlalchemy import Connection

from kandji_bridge.db.engine import make_engine
from kandji_bridge.db.models import Base, UTCDateTime


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Keep generated migrations free of product imports: UTCDateTime is a plain timestamptz.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters a table only by copying it; batch mode writes migrations that do that.
        render_as_batch=True,
        # Our SQLite engine emits BEGIN itself (db/engine.py), so DDL is transactional there too.
        transactional_ddl=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    # The alembic command line, used to write a migration (see db/alembic.ini).
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("Pass a scratch database: alembic -c ... -x url=sqlite:////tmp/s.db ...")
    engine = make_engine(url)
    with engine.begin() as cli_connection:
        run_migrations(cli_connection)
    engine.dispose()
