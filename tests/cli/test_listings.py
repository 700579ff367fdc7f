"""`source list` and `user list` as a script reads them (real processes, output piped): the full
names a user must type next, never cut or wrapped, and `--format json`."""

import json
import os
import subprocess
import sys
from pathlib import Path

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state

CLI = [sys.executable, "-m", "kandji_bridge"]
LONG_USER = "a.very.long.username.for.the.security.team@example-corp.com"
LONG_SOURCE = "acme-production-tenant-europe-west-security-operations-audit"


def kandji_bridge(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home), "COLUMNS": "80"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def test_user_list_piped_shows_whole_names_and_prints_json(home: Path) -> None:
    with open_state(load_settings(home)) as state:
        users.create_user(state, LONG_USER, "a long enough password")
        users.create_user(state, "bob_the_builder", "a long enough password")
    table = kandji_bridge(home, "user", "list")
    assert table.returncode == 0, table.stderr
    assert LONG_USER in table.stdout.split(), table.stdout
    listed = kandji_bridge(home, "user", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    assert sorted(user["username"] for user in found) == sorted([LONG_USER, "bob_the_builder"])
    assert all(user["last_login_at"] is None for user in found)


def test_source_list_piped_shows_whole_names_and_prints_json(home: Path) -> None:
    url = "https://acme-production-tenant-europe.api.eu.kandji.io"
    with open_state(load_settings(home)) as state:
        sources.add_source(state, LONG_SOURCE, url, "kandji-token-never-shown")
    table = kandji_bridge(home, "source", "list")
    assert table.returncode == 0, table.stderr
    assert LONG_SOURCE in table.stdout.split() and url in table.stdout.split(), table.stdout
    listed = kandji_bridge(home, "source", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (source,) = json.loads(listed.stdout)
    assert source["name"] == LONG_SOURCE and source["api_url"] == url
    assert "kandji-token-never-shown" not in listed.stdout + table.stdout


def test_empty_listings_in_json_are_empty_arrays(home: Path) -> None:
    for command in (["user", "list"], ["source", "list"]):
        listed = kandji_bridge(home, *command, "--format", "json")
        assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr


def test_collection_show_and_logs_query_piped_show_whole_values(home: Path) -> None:
    label = "Primary user email address as recorded in the identity provider directory"
    created = kandji_bridge(home, "collection", "create", "Laptops", "--field", f"{label}:text")
    assert created.returncode == 0, created.stderr
    shown = kandji_bridge(home, "collection", "show", "Laptops")
    assert shown.returncode == 0, shown.stderr
    assert label in shown.stdout, shown.stdout

    key = "acme-production-tenant-europe-west-security-operations-audit-events"
    queried = kandji_bridge(home, "logs", "query", f"SELECT '{key}' AS source_key, 1 AS n")
    assert queried.returncode == 0, queried.stderr
    assert key in queried.stdout.split(), queried.stdout
