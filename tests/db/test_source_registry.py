"""The source registry on a real state database: CRUD, refusals, and no plain token at rest."""

from dataclasses import fields, replace
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from kandji_bridge.config import load_settings
from kandji_bridge.db import StateDB, open_state
from kandji_bridge.detections.rules import NAME_MAX
from kandji_bridge.errors import AlreadyExists, ConfigError, NotFound
from kandji_bridge.jobs import status as jobs
from kandji_bridge.source_registry import (
    InvalidSource,
    add_source,
    get_source,
    get_source_token,
    list_sources,
    remove_source,
)

TOKEN = "5f1c7a2e-9d4b-4e8a-b3c6-0a1b2c3d4e5f"
URL = "https://acme.api.kandji.io"


def test_add_get_list_remove(state: StateDB) -> None:
    added = add_source(state, "Acme EU", URL, TOKEN, poll_interval=30, retention_days=90)
    assert (added.name, added.api_url, added.poll_interval_seconds, added.retention_days) == (
        "Acme EU",
        URL,
        30,
        90,
    )
    assert get_source(state, "Acme EU") == added
    assert get_source_token(state, "Acme EU") == TOKEN
    other = add_source(state, "acme-us", "https://acme.api.eu.kandji.io", "other-token")
    assert [source.name for source in list_sources(state)] == ["Acme EU", "acme-us"]
    assert remove_source(state, "Acme EU") == added
    assert list_sources(state) == [other]


def test_defaults_and_timestamps(state: StateDB) -> None:
    source = add_source(state, "prod", URL, TOKEN)
    assert (source.poll_interval_seconds, source.retention_days) == (60, 730)
    assert len(source.id) == 36
    stored = get_source(state, "prod")
    assert stored.created_at.tzinfo == UTC
    assert stored.created_at == source.created_at  # the microseconds survive the round trip


def test_source_info_cannot_show_the_token(state: StateDB) -> None:
    source = add_source(state, "prod", URL, TOKEN)
    assert not any("token" in field.name for field in fields(source))
    assert TOKEN not in repr(source)
    assert TOKEN not in repr(list_sources(state))


def test_the_state_repr_shows_no_secret(state: StateDB) -> None:
    secret = replace(state, settings=replace(state.settings, secret_key="a passphrase, kept"))
    assert "a passphrase, kept" not in repr(secret)
    password = make_url(state.settings.database_url).password
    if password:
        assert f":{password}@" not in repr(secret)


def test_a_duplicate_name_is_refused(state: StateDB) -> None:
    add_source(state, "Acme EU", URL, TOKEN)
    with pytest.raises(AlreadyExists) as caught:
        add_source(state, "Acme EU", URL, "another-token")
    assert str(caught.value) == (
        "A source named 'Acme EU' already exists; pick another name "
        "or remove it with `kandji-bridge source remove 'Acme EU'`."
    )
    assert get_source_token(state, "Acme EU") == TOKEN  # the first one is untouched


def test_an_unknown_name(state: StateDB) -> None:
    message = "No source named nope; `kandji-bridge source list` shows the names."
    for call in (get_source, get_source_token, remove_source):
        with pytest.raises(NotFound) as caught:
            call(state, "nope")
        assert str(caught.value) == message


BAD_SETTINGS = [
    ({"name": ""}, "The source name is empty"),
    ({"name": "x" * 65}, "is 65 characters long; use at most 64"),
    ({"name": "acme/eu"}, "contains '/'; use only letters, digits, spaces"),
    ({"api_url": " "}, "API URL is empty"),
    ({"api_url": URL + "/" * 2048}, "API URL is 2074 characters long"),
    ({"token": "\n"}, "API token is empty"),
    ({"poll_interval": 0}, "poll interval must be a whole number of seconds from 1 to 86400"),
    ({"poll_interval": True}, "poll interval"),
    ({"retention_days": 0}, "retention must be a whole number of days from 1 to 3650, not 0"),
    ({"retention_days": 3651}, "from 1 to 3650, not 3651"),
]


def test_bad_settings_are_refused_and_nothing_is_stored(state: StateDB) -> None:
    for changes, message in BAD_SETTINGS:
        arguments = {"name": "prod", "api_url": URL, "token": TOKEN} | changes
        with pytest.raises(InvalidSource, match=message):
            add_source(state, **arguments)
    assert list_sources(state) == []


def test_the_token_is_not_in_the_sqlite_files(home: Path) -> None:
    def assert_no_token() -> None:
        files = [path for path in home.glob("state.db*") if path.is_file()]
        assert files
        for path in files:
            data = path.read_bytes()
            assert TOKEN.encode() not in data
            assert TOKEN.encode("utf-16-le") not in data

    with open_state(load_settings()) as state:
        add_source(state, "prod", URL, TOKEN)
        assert_no_token()  # the database and its write-ahead log
    assert_no_token()


def test_the_token_is_not_in_the_row(state: StateDB) -> None:
    add_source(state, "prod", URL, TOKEN)
    with state.engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM sources")).one()
    assert all(TOKEN not in str(value) for value in row)
    assert row.token_ciphertext.startswith("gAAAAA")  # a Fernet token


def test_a_different_secret_key_is_explained(state: StateDB) -> None:
    add_source(state, "Acme EU", URL, TOKEN)
    other = replace(state, settings=replace(state.settings, secret_key="another long passphrase"))
    with pytest.raises(ConfigError) as caught:
        get_source_token(other, "Acme EU")
    message = str(caught.value)
    assert message.startswith(
        "The token of source 'Acme EU' was encrypted with a different secret key than the one in "
        "KANDJI_BRIDGE_SECRET_KEY;"
    )
    assert "remove the source and add it again" in message


def test_the_longest_rule_name_keeps_its_job_status(state: StateDB) -> None:
    """A rule's status lives under "detection:NAME": the longest name a rule may have fits."""
    job = jobs.detection_job("r" * NAME_MAX)
    jobs.record_start(state, job)
    jobs.record_failure(state, job, "boom")
    shown = jobs.job_status(state, job)
    assert shown is not None and shown.last_error == "boom"
