"""Connecting to the state database (SQLite or PostgreSQL), and saying clearly why it failed."""

import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from kandji_bridge.config import ENV_DATABASE_URL
from kandji_bridge.errors import ConfigError

# Seconds a SQLite writer waits for another process's write to finish before giving up.
SQLITE_BUSY_TIMEOUT = 15
SQLITE_CACHE_KIB = 32 * 1024  # per connection, at most
# Seconds before an unreachable PostgreSQL server counts as down.
POSTGRES_CONNECT_TIMEOUT = 10
_SQLITE_FULL_BELOW = 16 * 1024 * 1024  # below this, a disk I/O error is a full disk

URL_EXAMPLES = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:5432/DATABASE"

# SQLAlchemy reads the password as everything between `user:` and `@`; mask up to the *last* `@`
# so a password with a stray unescaped `@` is hidden whole.
_PASSWORD_IN_URL = re.compile(r"^([\w+.-]+://[^:/@]*:)(.*)@", re.DOTALL)
_PASSWORD_WITHOUT_SCHEME = re.compile(r"^([^:/@]*:)(.*)@", re.DOTALL)
_PASSWORD_IN_QUERY = re.compile(r"([?&]password=)[^&]*", re.IGNORECASE)


def mask_url(database_url: str) -> str:
    """The URL with any password replaced by `***`, safe to show. Works on unparseable URLs too."""
    userinfo = _PASSWORD_IN_URL if "://" in database_url else _PASSWORD_WITHOUT_SCHEME
    masked = userinfo.sub(r"\1***@", database_url)
    return _PASSWORD_IN_QUERY.sub(r"\1***", masked)


def parse_url(database_url: str) -> URL:
    """A supported state-database URL, or ConfigError. `postgresql://` means psycopg 3."""
    shown = mask_url(database_url) or "(empty)"
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(
            f"The state database URL {shown} is not a database URL; "
            f"set {ENV_DATABASE_URL} to {URL_EXAMPLES}."
        ) from None
    # Read the scheme as text: asking SQLAlchemy for the driver would import it.
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if url.database in (None, "", ":memory:"):
            # An in-memory database would vanish with its connection, and the state with it.
            raise ConfigError(
                f"The state database URL {shown} names no file; "
                f"set {ENV_DATABASE_URL} to sqlite:///PATH."
            )
        return url.set(drivername="sqlite")
    raise ConfigError(
        f"The state database URL {shown} names a database kandji-bridge does not support; "
        f"set {ENV_DATABASE_URL} to {URL_EXAMPLES}."
    )


def make_engine(database_url: str) -> Engine:
    """An engine for the state database: SQLite tuned for several processes, or PostgreSQL."""
    url = parse_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    try:
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": POSTGRES_CONNECT_TIMEOUT,
                "application_name": "kandji-bridge",
            },
        )
    except ImportError:
        raise ConfigError(
            "PostgreSQL support is not installed; run `pip install 'kandji-bridge[postgres]'`."
        ) from None


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, decides where transactions begin (_sqlite_on_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    # WAL: readers never block the writer, so `serve` and CLI commands can share the file.
    cursor.execute("PRAGMA journal_mode = WAL")
    # A 32 MB page cache (the default is 2 MB), filled only as pages are read: an import that
    # keeps sort keys inserts them all over their B-tree, and with 2 MB each insert read its
    # page back from the file (inventory_sync.py --sorted: updates 3,600-4,300/s -> 5,900-6,800).
    cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_on_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two processes queue on the busy timeout instead
    # of one failing at once with "database is locked" when a read transaction turns into a write.
    # It also makes DDL transactional, so a migration applies whole or not at all.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    # Objects stay readable after commit: callers turn them into plain dataclasses afterwards.
    return sessionmaker(engine, expire_on_commit=False)


def database_error(database_url: str, exc: BaseException) -> ConfigError:
    """A one-sentence ConfigError for a driver failure, with the password never shown."""
    shown = mask_url(database_url)
    original = getattr(exc, "orig", None) or exc
    detail = _first_line(str(original))
    password = _password(database_url)
    if password:
        detail = detail.replace(password, "***")
    text = detail.lower()
    if isinstance(original, sqlite3.Error) or shown.startswith("sqlite"):
        return ConfigError(_sqlite_sentence(shown, text, detail))
    return ConfigError(_postgres_sentence(shown, text, detail))


def _sqlite_sentence(shown: str, text: str, detail: str) -> str:
    free = _free_bytes(shown)
    # SQLite says "database or disk is full", or, when the WAL index cannot grow, "disk I/O error".
    if (
        "disk is full" in text
        or "no space left" in text
        or ("disk i/o error" in text and free is not None and free < _SQLITE_FULL_BELOW)
    ):
        where = "" if free is None else f" ({free / 1024**2:.1f} MB free)"
        return (
            f"The disk holding the state database {shown} is full{where}; free some space "
            "there (or move the home to a bigger disk) and run the command again."
        )
    if "disk i/o error" in text:
        return (
            f"The state database {shown} hit a disk I/O error; check the disk it is on "
            "(its system log, free space) and run the command again."
        )
    if "readonly" in text or "read-only" in text:
        return (
            f"The state database {shown} is read-only; "
            "make the file and its folder writable by this user."
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return (
            f"The state database {shown} is damaged or is not a SQLite database; "
            "restore it from a backup or move it away to start with an empty one."
        )
    if "unable to open" in text:
        return (
            f"Cannot open the state database {shown}; "
            "check that its folder exists and is writable by this user."
        )
    if "locked" in text or "busy" in text:
        return (
            f"The state database {shown} stayed locked by another kandji-bridge process "
            f"for {SQLITE_BUSY_TIMEOUT} s; try again when it has finished."
        )
    return f"The state database {shown} failed ({detail}); check {ENV_DATABASE_URL}."


def _postgres_sentence(shown: str, text: str, detail: str) -> str:
    if "no space left" in text or "disk full" in text or "could not extend file" in text:
        return (
            f"The PostgreSQL server of {shown} has run out of disk space ({detail}); "
            "free space on the server's data disk and run the command again."
        )
    if "password authentication failed" in text or "no password supplied" in text:
        return (
            f"PostgreSQL refused the user name or password in {shown}; "
            f"fix the credentials in {ENV_DATABASE_URL}."
        )
    if "does not exist" in text and "database" in text:
        return (
            f"The database named in {shown} does not exist on that PostgreSQL server; "
            f"create it (createdb) or fix {ENV_DATABASE_URL}."
        )
    if "resolve host" in text or "translate host name" in text or "name or service" in text:
        return (
            f"The PostgreSQL host in {shown} has no DNS entry; "
            f"fix the host name in {ENV_DATABASE_URL}."
        )
    if any(
        phrase in text
        for phrase in ("connection refused", "timeout expired", "timed out", "no route to host")
    ):
        return (
            f"Cannot reach the PostgreSQL server at {shown}; check that it is running "
            f"and that {ENV_DATABASE_URL} names the right host and port."
        )
    if "read-only" in text:
        return (
            f"The PostgreSQL database in {shown} is read-only (a standby?); "
            f"point {ENV_DATABASE_URL} at the primary server."
        )
    if "permission denied" in text:
        return (
            f"The PostgreSQL user in {shown} lacks a permission kandji-bridge needs ({detail}); "
            "grant it CREATE on the database's schema, or use the database's owner."
        )
    return f"The PostgreSQL state database {shown} failed ({detail}); check {ENV_DATABASE_URL}."


def _free_bytes(shown: str) -> int | None:
    """Free bytes on the disk of a SQLite URL's folder, or None when it cannot be read."""
    try:
        folder = Path(make_url(shown).database or "").resolve().parent
        return shutil.disk_usage(folder).free
    except (ArgumentError, ValueError, OSError):
        return None


def _password(database_url: str) -> str | None:
    try:
        return make_url(database_url).password
    except (ArgumentError, ValueError):
        return None


def _first_line(message: str) -> str:
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    return lines[0].rstrip(".") if lines else "no details"
