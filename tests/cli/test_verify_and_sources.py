"""`verify` and `source add/list/remove` as a user runs them, against the simulator over HTTP."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from kandji_bridge.cli import main
from kandji_bridge.simulator.server import RunningSimulator

PARTIAL = "partial-token-1234"  # audit only


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lines_by_check(output: str) -> dict[str, str]:
    """`ok    token  Kandji accepted the token` → {"token": "ok    token  Kandji..."}."""
    names = ("URL", "token", "List audit events", "Device list", "Device details")
    found = {}
    for line in output.splitlines():
        for name in names:
            if line[6:].startswith(name + " "):
                found[name] = line
    return found


def test_verify_passes_every_check_with_a_full_token(
    home: Path, allow_simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("KANDJI_TOKEN", allow_simulator.token)
    code, out, err = run(
        ["verify", "--url", allow_simulator.base_url, "--token-env", "KANDJI_TOKEN"], capsys
    )
    assert code == 0, out + err
    checks = lines_by_check(out)
    assert len(checks) == 5
    assert all(line.startswith("ok") for line in checks.values()), out
    assert allow_simulator.token not in out + err


def test_verify_names_each_missing_permission_and_how_to_grant_it(
    home: Path, simulator_factory, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    sim = simulator_factory(devices=3, events=10, tokens={PARTIAL: frozenset({"audit"})})
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", sim.host_port)
    monkeypatch.setenv("KANDJI_TOKEN", PARTIAL)
    code, out, _ = run(["verify", "--url", sim.base_url, "--token-env", "KANDJI_TOKEN"], capsys)
    assert code == 1
    checks = lines_by_check(out)
    assert checks["List audit events"].startswith("ok")
    for name, endpoint in [
        ("Device list", "GET /api/v1/devices"),
        ("Device details", "GET /api/v1/devices/{device_id}/details"),
    ]:
        line = checks[name]
        assert line.startswith("FAIL")
        assert f'enable "{name}" ({endpoint})' in line
        assert "Settings → Access" in line
    assert PARTIAL not in out


def test_verify_reports_a_refused_token_and_skips_the_rest(
    home: Path, allow_simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("KANDJI_TOKEN", "not-a-real-token-9999")
    code, out, err = run(
        ["verify", "--url", allow_simulator.base_url, "--token-env", "KANDJI_TOKEN"], capsys
    )
    assert code == 1
    checks = lines_by_check(out)
    assert checks["URL"].startswith("ok")
    assert checks["token"].startswith("FAIL") and "wrong, revoked or expired" in checks["token"]
    assert all(checks[n].startswith("skip") for n in ("List audit events", "Device list"))
    assert "not-a-real-token-9999" not in out + err


def test_verify_refuses_a_host_that_is_not_kandji(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("KANDJI_TOKEN", "whatever-token")
    code, out, _ = run(
        ["verify", "--url", "https://example.com", "--token-env", "KANDJI_TOKEN"], capsys
    )
    assert code == 1
    url_line = lines_by_check(out)["URL"]
    assert url_line.startswith("FAIL") and "YOUR_SUBDOMAIN.api.kandji.io" in url_line


def test_verify_says_when_nothing_answers(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    port = free_port()
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", f"127.0.0.1:{port}")
    monkeypatch.setenv("KANDJI_TOKEN", "whatever-token")
    code, out, err = run(
        ["verify", "--url", f"http://127.0.0.1:{port}", "--token-env", "KANDJI_TOKEN"], capsys
    )
    assert code == 1
    url_line = lines_by_check(out)["URL"]
    assert url_line.startswith("FAIL") and "Cannot reach 127.0.0.1" in url_line
    assert "Traceback" not in out + err


def test_token_options_are_usage_errors_when_missing_or_doubled(home: Path, capsys) -> None:
    code, _, err = run(["verify", "--url", "https://acme.api.kandji.io"], capsys)
    assert code == 2 and "--token-env" in err
    code, _, err = run(
        ["verify", "--url", "https://acme.api.kandji.io", "--token-env", "X", "--token-stdin"],
        capsys,
    )
    assert code == 2 and "exactly one" in err


def test_an_unset_token_variable_is_one_clear_sentence(home: Path, capsys) -> None:
    code, _, err = run(
        ["verify", "--url", "https://acme.api.kandji.io", "--token-env", "NOT_SET_ANYWHERE"],
        capsys,
    )
    assert code == 1
    assert "NOT_SET_ANYWHERE is empty or not set" in err
    assert "Traceback" not in err


def test_source_add_list_verify_remove(
    home: Path, allow_simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("KANDJI_TOKEN", allow_simulator.token)
    code, out, err = run(
        [
            "source",
            "add",
            "--name",
            "acme",
            "--url",
            allow_simulator.base_url,
            "--token-env",
            "KANDJI_TOKEN",
            "--poll-interval",
            "30",
        ],
        capsys,
    )
    assert code == 0, err
    assert "Added source acme" in out
    code, out, _ = run(["source", "list"], capsys)
    assert code == 0 and "acme" in out and "30 s" in out
    code, out, _ = run(["verify", "acme"], capsys)
    assert code == 0, out
    code, _, err = run(
        [
            "source",
            "add",
            "--name",
            "acme",
            "--url",
            allow_simulator.base_url,
            "--token-env",
            "KANDJI_TOKEN",
        ],
        capsys,
    )
    assert code == 1 and "already exists" in err
    code, out, _ = run(["source", "remove", "acme"], capsys)
    assert code == 0
    code, _, err = run(["verify", "acme"], capsys)
    assert code == 1 and "No source named" in err
    state_db = (home / "state.db").read_bytes()
    assert allow_simulator.token.encode() not in state_db


def test_source_add_refuses_a_token_without_the_audit_permission(
    home: Path, simulator_factory, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    sim = simulator_factory(devices=3, events=10, tokens={PARTIAL: frozenset({"devices"})})
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", sim.host_port)
    monkeypatch.setenv("KANDJI_TOKEN", PARTIAL)
    code, _, err = run(
        ["source", "add", "--name", "acme", "--url", sim.base_url, "--token-env", "KANDJI_TOKEN"],
        capsys,
    )
    assert code == 1
    assert "Source acme was not saved" in err and '"List audit events"' in err
    code, out, err = run(["source", "list"], capsys)
    assert "acme" not in out


def test_the_installed_command_exits_cleanly_without_a_traceback(home: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kandji_bridge",
            "verify",
            "--url",
            "ftp://acme",
            "--token-env",
            "NOPE_NOT_SET",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("Error:")
    result = subprocess.run(
        [sys.executable, "-m", "kandji_bridge", "source", "list", "--bogus"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "No such option" in result.stderr
