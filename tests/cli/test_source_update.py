"""`source update` and `verify`'s optional line as a user runs them, against the simulator."""

from pathlib import Path

import pytest

from cli.test_verify_and_sources import run
from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state

FULL = "full-token-with-every-permission"
LOGS_ONLY = "logs-only-token-5678"
NO_ADMINS = "no-admins-token-9012"
TOKENS = {
    FULL: frozenset({"audit", "devices", "details", "admins"}),
    LOGS_ONLY: frozenset({"audit"}),
    NO_ADMINS: frozenset({"audit", "devices", "details"}),
}


@pytest.fixture
def tenant(home: Path, simulator_factory, monkeypatch: pytest.MonkeyPatch, capsys):
    sim = simulator_factory(devices=3, events=30, history_days=10, seed=7, tokens=TOKENS)
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", sim.host_port)
    monkeypatch.setenv("KANDJI_TOKEN", FULL)
    add = ["source", "add", "--name", "acme", "--url", sim.base_url, "--token-env", "KANDJI_TOKEN"]
    code, _, err = run(add, capsys)
    assert code == 0, err
    return sim


def stored_token(home: Path) -> str:
    return sources.get_source_token(open_state(load_settings(home)), "acme")


def test_source_update_rotates_the_token_and_changes_the_settings(
    home: Path, tenant, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    code, out, err = run(["logs", "sync", "acme"], capsys)
    assert code == 0, err
    monkeypatch.setenv("NEW_TOKEN", LOGS_ONLY)

    code, out, err = run(
        [
            "source", "update", "acme", "--token-env", "NEW_TOKEN", "--poll-interval", "120",
            "--retention-days", "400", "--display-name", "Acme production",
        ],
        capsys,
    )  # fmt: skip

    assert code == 0, err
    assert "Updated source acme: token, poll interval, retention, display name." in out
    assert LOGS_ONLY not in out + err
    assert stored_token(home) == LOGS_ONLY
    code, out, _ = run(["source", "list"], capsys)
    assert "120 s" in out and "400 days" in out


def test_source_update_with_a_refused_token_changes_nothing(
    home: Path, tenant, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("NEW_TOKEN", "a-token-kandji-never-issued")

    code, out, err = run(
        ["source", "update", "acme", "--token-env", "NEW_TOKEN", "--poll-interval", "120"], capsys
    )

    assert code == 1
    assert err.startswith("Error: The new token was not saved and source acme keeps its token")
    assert "Traceback" not in err and "a-token-kandji-never-issued" not in out + err
    assert stored_token(home) == FULL
    code, out, _ = run(["source", "list"], capsys)
    assert "60 s" in out


def test_source_update_needs_something_to_change(home: Path, tenant, capsys) -> None:
    code, _, err = run(["source", "update", "acme"], capsys)
    assert code == 2 and "Give what to change" in err


def test_verify_shows_list_admins_as_optional(
    home: Path, tenant, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("KANDJI_TOKEN", NO_ADMINS)

    code, out, _ = run(["verify", "--url", tenant.base_url, "--token-env", "KANDJI_TOKEN"], capsys)

    assert code == 0, out
    line = next(line for line in out.splitlines() if "List admins" in line)
    assert line.startswith("opt ")
    assert "optional, not granted" in line and "admins' names" in line
