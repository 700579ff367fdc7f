"""A state database that cannot be used gives one clear sentence, and never shows its password."""

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from kandji_bridge.config import load_settings
from kandji_bridge.db import StateDB, make_engine, mask_url, migrate, open_state, session_factory
from kandji_bridge.db.engine import database_error, parse_url
from kandji_bridge.db.models import Workspace
from kandji_bridge.errors import ConfigError

from .postgres import require_postgres

PASSWORD = "hunter2-very-secret"


def refusal(database_url: str) -> str:
    with pytest.raises(ConfigError) as caught:
        migrate(database_url)
    message = str(caught.value)
    assert PASSWORD not in message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"postgresql+psycopg://kb:{PASSWORD}@db:5432/kb",
            "postgresql+psycopg://kb:***@db:5432/kb",
        ),
        (
            f"postgresql://kb:{PASSWORD}@db/kb?sslmode=require",
            "postgresql://kb:***@db/kb?sslmode=require",
        ),
        ("postgresql://kb:p@ss/w:rd@db/kb", "postgresql://kb:***@db/kb"),
        (
            f"postgresql://db/kb?user=kb&password={PASSWORD}",
            "postgresql://db/kb?user=kb&password=***",
        ),
        (f"not a url:{PASSWORD}@host", "not a url:***@host"),
        ("sqlite:////srv/a@b/state.db", "sqlite:////srv/a@b/state.db"),
        (f"weird://kb:{PASSWORD}@", "weird://kb:***@"),
        ("sqlite:////var/lib/kb/state.db", "sqlite:////var/lib/kb/state.db"),
    ],
)
def test_mask_url_hides_the_password(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_postgresql_urls_use_psycopg_3() -> None:
    for url in ("postgresql://kb@db/kb", "postgres://kb@db/kb", "postgresql+psycopg://kb@db/kb"):
        assert parse_url(url).drivername == "postgresql+psycopg"


def test_a_url_that_is_not_a_url_is_refused() -> None:
    message = refusal(f"kb:{PASSWORD}@localhost")
    assert "is not a database URL" in message
    assert "sqlite:///PATH" in message


@pytest.mark.parametrize(
    "url", ["", f"postgresql://kb:{PASSWORD}@db:port/kb", "sqlite:", "sqlite://", "sqlite:///"]
)
def test_urls_that_cannot_work_are_refused(url: str) -> None:
    message = refusal(url)
    assert message.startswith("The state database URL ")
    assert "KANDJI_BRIDGE_DATABASE_URL to sqlite:///PATH" in message


def test_an_unsupported_database_is_refused_with_the_password_masked() -> None:
    message = refusal(f"mysql://kb:{PASSWORD}@db/kb")
    assert message.startswith("The state database URL mysql://kb:***@db/kb names a database")


def test_an_unreachable_postgresql_server() -> None:
    # Port 1 on the loopback: nothing listens, so the connection is refused at once.
    message = refusal(f"postgresql+psycopg://kb:{PASSWORD}@127.0.0.1:1/kb")
    assert message.startswith(
        "Cannot reach the PostgreSQL server at postgresql+psycopg://kb:***@127.0.0.1:1/kb;"
    )


def test_a_wrong_postgresql_password(request: pytest.FixtureRequest) -> None:
    url = make_url(require_postgres(request.config)).set(password=PASSWORD)
    message = refusal(url.render_as_string(hide_password=False))
    assert "refused the user name or password" in message
    assert "***" in message


def test_a_missing_postgresql_database(request: pytest.FixtureRequest) -> None:
    url = make_url(require_postgres(request.config)).set(database="kb_no_such_database")
    message = refusal(url.render_as_string(hide_password=False))
    assert "does not exist" in message
    assert "createdb" in message


def test_a_corrupt_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a SQLite database, just bytes " * 200)
    message = refusal(f"sqlite:///{path}")
    assert message == (
        f"The state database sqlite:///{path} is damaged or is not a SQLite database; "
        "restore it from a backup or move it away to start with an empty one."
    )


def test_a_read_only_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    migrate(f"sqlite:///{path}")
    # mode=ro opens the file as SQLite does a file this user may not write (chmod is moot as root).
    message = refusal(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert "is read-only; make the file and its folder writable" in message


def test_a_sqlite_file_in_a_missing_folder(tmp_path: Path) -> None:
    message = refusal(f"sqlite:///{tmp_path / 'no-such-folder' / 'state.db'}")
    assert "check that its folder exists and is writable" in message


def test_open_state_reports_a_bad_database_url(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANDJI_BRIDGE_DATABASE_URL", f"postgresql://kb:{PASSWORD}@127.0.0.1:1/kb")
    with pytest.raises(ConfigError) as caught:
        open_state(load_settings())
    assert PASSWORD not in str(caught.value)


def test_a_failure_after_opening_becomes_a_clear_error(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    migrate(f"sqlite:///{path}")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    engine = make_engine(read_only)
    settings = replace(load_settings(), database_url=read_only)
    state = StateDB(settings, engine, session_factory(engine), workspace_id="")
    with state, pytest.raises(ConfigError, match="is read-only"), state.session() as session:
        session.add(Workspace(id="another"))


def test_a_postgresql_server_out_of_disk_is_said_as_such() -> None:
    """PostgreSQL's own words for a full data disk (SQLSTATE 53100); filling a shared server's
    disk is not something a test may do, so the driver's message is given as it arrives."""
    url = f"postgresql+psycopg://kb:{PASSWORD}@db:5432/kb"
    failure = RuntimeError(
        'could not extend file "base/16384/16385": No space left on device\n'
        "HINT:  Check free disk space."
    )
    message = str(database_error(url, failure))
    assert message.startswith("The PostgreSQL server of postgresql+psycopg://kb:***@db:5432/kb ")
    assert "has run out of disk space" in message and "free space on the server" in message
    assert "KANDJI_BRIDGE_DATABASE_URL" not in message and PASSWORD not in message
