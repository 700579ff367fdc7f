"""`user create/list/set-password/token` as an admin runs them."""

import io
from pathlib import Path

import pytest

from kandji_bridge import users
from kandji_bridge.cli import main
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state

PASSWORD = "a long enough password"


def run(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin=""
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def test_create_then_sign_in_with_that_password(home: Path, capsys, monkeypatch) -> None:
    code, out, _ = run(
        ["user", "create", "alice", "--password-stdin"], capsys, monkeypatch, PASSWORD
    )
    assert code == 0
    assert "Created user alice" in out
    with open_state(load_settings(home)) as state:
        assert users.authenticate(state, "alice", PASSWORD) is not None
        assert users.authenticate(state, "alice", "another password!") is None
    code, out, _ = run(["user", "list"], capsys, monkeypatch)
    assert code == 0
    assert "alice" in out


def test_bad_input_gets_one_clear_sentence(home: Path, capsys, monkeypatch) -> None:
    code, _, err = run(["user", "create", "bob", "--password-stdin"], capsys, monkeypatch, "short")
    assert code == 1
    assert "too short; use at least 12 characters" in err
    assert "Traceback" not in err
    code, _, err = run(["user", "create", "b b", "--password-stdin"], capsys, monkeypatch, PASSWORD)
    assert code == 1
    assert "may contain only letters" in err
    run(["user", "create", "bob", "--password-stdin"], capsys, monkeypatch, PASSWORD)
    code, _, err = run(["user", "create", "bob", "--password-stdin"], capsys, monkeypatch, PASSWORD)
    assert code == 1
    assert "exists already" in err
    code, _, err = run(["user", "create", "carol"], capsys, monkeypatch)
    assert code == 2
    assert "--password-stdin" in err


def test_token_is_printed_once_and_works(home: Path, capsys, monkeypatch) -> None:
    run(["user", "create", "ci", "--password-stdin"], capsys, monkeypatch, PASSWORD)
    code, out, err = run(["user", "token", "ci", "--name", "pipeline"], capsys, monkeypatch)
    assert code == 0
    token = out.strip()
    assert token.startswith("kbt_")
    assert "not shown again" in err
    with open_state(load_settings(home)) as state:
        found = users.token_user(state, token)
        assert found is not None
        assert found.user.username == "ci"
        assert found.scope == "read", "a token reads only unless asked for more"
    code, _, err = run(["user", "token", "nobody", "--name", "x"], capsys, monkeypatch)
    assert code == 1
    assert "No user is called 'nobody'" in err


def test_a_token_gets_the_scope_asked_for_and_nothing_else(home: Path, capsys, monkeypatch) -> None:
    run(["user", "create", "ops", "--password-stdin"], capsys, monkeypatch, PASSWORD)
    code, out, err = run(
        ["user", "token", "ops", "--name", "terraform", "--scope", "admin"], capsys, monkeypatch
    )
    assert code == 0 and "Store this admin token now" in err
    with open_state(load_settings(home)) as state:
        found = users.token_user(state, out.strip())
        assert found is not None and found.scope == "admin"
    code, out, err = run(
        ["user", "token", "ops", "--name", "x", "--scope", "write"], capsys, monkeypatch
    )
    assert code == 2 and out == ""
    assert "'write' is not one of 'read', 'admin'" in err
    _, help_text, _ = run(["user", "token", "--help"], capsys, monkeypatch)
    assert "read (the default)" in " ".join(help_text.split())


def test_set_password_signs_out_old_sessions(home: Path, capsys, monkeypatch) -> None:
    run(["user", "create", "dan", "--password-stdin"], capsys, monkeypatch, PASSWORD)
    with open_state(load_settings(home)) as state:
        user = users.authenticate(state, "dan", PASSWORD)
        secret, _ = users.start_session(state, user.id)
    new = "a different long password"
    code, _, _ = run(["user", "set-password", "dan", "--password-stdin"], capsys, monkeypatch, new)
    assert code == 0
    with open_state(load_settings(home)) as state:
        assert users.session_user(state, secret) is None
        assert users.authenticate(state, "dan", new) is not None
