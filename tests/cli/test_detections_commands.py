"""`detections`, `alerts` and `channel` as a user runs them, on a real chDB store and state DB,
with a real local webhook receiver."""

import io
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detections.receivers import HttpReceiver, self_signed_certificate, signature_ok
from kandji_bridge import source_registry as sources
from kandji_bridge.cli import main
from kandji_bridge.cli.logs import open_store
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.db.models import JobStatus
from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.channels import add_webhook
from kandji_bridge.detections.fixtures import FixtureEvent, load_fixtures
from kandji_bridge.detections.rules import previous_run
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.transform import transform
from kandji_bridge.operations import detections as ops

TESTS = Path(__file__).resolve().parents[1] / "detections"


def run(args: list[str], capsys, monkeypatch, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def rules_json(capsys, monkeypatch) -> dict[str, dict]:
    code, out, _ = run(["detections", "list", "--format", "json"], capsys, monkeypatch)
    assert code == 0
    return {item["name"]: item for item in json.loads(out)}


def test_enable_and_disable_a_pack_rule(home: Path, capsys, monkeypatch) -> None:
    rules = rules_json(capsys, monkeypatch)
    assert rules["kandji-delete-burst"]["origin"] == "pack"
    assert rules["kandji-delete-burst"]["enabled"] is False
    assert rules["kandji-delete-burst"]["severity"] == "High"

    code, out, _ = run(["detections", "enable", "kandji-delete-burst"], capsys, monkeypatch)
    assert code == 0 and "Enabled kandji-delete-burst" in out
    assert rules_json(capsys, monkeypatch)["kandji-delete-burst"]["enabled"] is True

    code, _, _ = run(["detections", "disable", "kandji-delete-burst"], capsys, monkeypatch)
    assert code == 0
    assert rules_json(capsys, monkeypatch)["kandji-delete-burst"]["enabled"] is False


def test_unknown_names_get_one_sentence(home: Path, capsys, monkeypatch) -> None:
    for args in (
        ["detections", "enable", "kandji-no-such-rule"],
        ["detections", "run", "kandji-no-such-rule", "--from", "2026-01-01"],
        ["detections", "enable", "kandji-delete-burst", "--notify", "no-such-channel"],
        ["channel", "test", "no-such-channel"],
    ):
        code, _, err = run(args, capsys, monkeypatch)
        assert code == 1, args
        assert err.startswith("Error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err


def test_validate_reports_a_malformed_rule(home: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "kandji-x.yaml").write_text(
        "name: kandji-x\ndisplayName: X\ndescription: x\nseverity: Severe\nschedule: '@15m'\n"
    )
    (folder / "kandji-x.sql").write_text(
        "SELECT * FROM kandji_logs "
        "WHERE receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}"
    )
    code, _, err = run(["detections", "validate", str(folder)], capsys, monkeypatch)
    assert code == 1
    assert 'severity "Severe" is not one of Low, Medium, High or Critical' in err
    code, _, err = run(["detections", "import", str(folder)], capsys, monkeypatch)
    assert code == 1 and "Nothing was imported" in err
    assert "kandji-x" not in rules_json(capsys, monkeypatch)


def test_import_a_sigma_rule_then_test_its_fixtures(
    home: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    shutil.copy(TESTS / "sigma" / "kandji-api-token-created.yml", folder / "my-token-created.yml")
    shutil.copy(
        KANDJI_PACK / "kandji-api-token-created.fixtures.yaml",
        folder / "my-token-created.fixtures.yaml",
    )
    code, out, err = run(["detections", "validate", str(folder)], capsys, monkeypatch)
    assert code == 0, err
    code, out, _ = run(["detections", "import", str(folder)], capsys, monkeypatch)
    assert code == 0 and "Imported my-token-created." in out
    assert rules_json(capsys, monkeypatch)["my-token-created"]["origin"] == "imported"

    code, out, err = run(["detections", "test", "my-token-created"], capsys, monkeypatch)
    assert code == 0, err
    assert "FAIL" not in out
    assert out.count("pass") >= 2

    # The pack's own name cannot be taken by an import.
    shutil.copy(folder / "my-token-created.yml", folder / "kandji-api-token-created.yml")
    code, _, err = run(["detections", "import", str(folder)], capsys, monkeypatch)
    assert code == 1 and "name of a built-in rule" in err


def test_webhook_channel_add_list_and_test(home: Path, capsys, monkeypatch) -> None:
    receiver = HttpReceiver().start()
    try:
        code, out, _ = run(
            ["channel", "add", "webhook", "siem", "--url", receiver.url], capsys, monkeypatch
        )
        assert code == 0
        secret = out.strip().rsplit(" ", 1)[-1]
        code, out, _ = run(["channel", "list", "--format", "json"], capsys, monkeypatch)
        (listed,) = json.loads(out)
        assert listed["name"] == "siem" and listed["kind"] == "webhook"
        assert secret not in out and "/hooks/kandji" not in out

        code, out, err = run(["channel", "test", "siem"], capsys, monkeypatch)
        assert code == 0, err
        assert len(receiver.requests) == 1
        assert signature_ok(receiver.requests[0], secret)
        code, out, _ = run(
            ["detections", "enable", "kandji-delete-burst", "--notify", "siem"],
            capsys,
            monkeypatch,
        )
        assert code == 0 and "alerts to siem" in out
    finally:
        receiver.stop()


def test_alerts_list_is_empty_at_first(home: Path, capsys, monkeypatch) -> None:
    code, out, _ = run(["alerts", "list", "--format", "json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out) == []


def test_list_shows_the_signal_age_and_a_rule_that_failed(home: Path, capsys, monkeypatch) -> None:
    failure = (
        "Detection kandji-delete-burst ran longer than the 60 s a rule may run and was stopped; "
        "make its SQL read less (a shorter lookback, fewer columns), raise "
        "KANDJI_BRIDGE_DETECTION_SECONDS, or disable it."
    )
    run(["detections", "enable", "kandji-delete-burst"], capsys, monkeypatch)
    with open_state(load_settings()) as state, state.session() as session:
        session.merge(
            JobStatus(
                job=jobs.detection_job("kandji-delete-burst"),
                runs=1,
                failures=1,
                last_error=failure,
            )
        )
    monkeypatch.setenv("KANDJI_BRIDGE_SIGNAL_AGE_HOURS", "72")
    code, out, err = run(["detections", "list"], capsys, monkeypatch)
    assert code == 0 and "kandji-delete-burst" in out
    said = " ".join(err.split())
    assert f"Error: {failure}" in said
    assert "Matches on events older than 3 days are stored as signals and not sent" in said
    assert rules_json(capsys, monkeypatch)["kandji-delete-burst"]["last_error"] == failure

    monkeypatch.setenv("KANDJI_BRIDGE_SIGNAL_AGE_HOURS", "three days")
    code, out, err = run(["detections", "list"], capsys, monkeypatch)
    assert code == 1 and out == ""
    assert err.startswith("Error: KANDJI_BRIDGE_SIGNAL_AGE_HOURS must be a number of hours")
    assert "Traceback" not in err


def test_a_pack_rule_runs_the_fixtures_that_ship_with_it(home: Path, capsys, monkeypatch) -> None:
    cases = load_fixtures(KANDJI_PACK / "kandji-delete-burst.fixtures.yaml")
    code, out, err = run(["detections", "test", "kandji-delete-burst"], capsys, monkeypatch)
    assert code == 0, err
    assert out.count("pass") == len(cases) >= 2 and "FAIL" not in out
    assert "Rule kandji-delete-burst, negative case" in " ".join(out.split())


def test_alerts_list_json_names_the_sources_and_devices(home: Path, capsys, monkeypatch) -> None:
    device = "0b0f3f1e-4c9c-4c53-9b54-6d4f1f3b2a10"
    event = {
        "id": "01JNQE00000000000000000001",
        "action": "delete",
        "occurred_at": "2026-12-06T09:00:00.000000Z",
        "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "actor_type": "user",
        "target_id": device,
        "target_type": "device",
        "target_component": "",
        "new_state": {},
        "metadata": {},
    }
    settings = load_settings()
    boundary = previous_run("*/15 * * * *", datetime.now(UTC))
    with open_state(settings) as state:
        acme = sources.add_source(state, "acme", "https://acme.api.kandji.io", "token-1")
        sources.update_source(state, "acme", display_name="Acme Corp")
        add_webhook(state, "siem", "https://siem.example.com/hooks", "a signing secret of it")
        store = open_store(settings)
        try:
            context = NormalizeContext(
                "ws", acme.id, 0, received_at=boundary - timedelta(minutes=5)
            )
            enricher = build_enricher([], use_geoip2fast=False, env={})
            batch = [FixtureEvent(timedelta(0), event, json.dumps(event))]
            store.insert(transform(batch, context, enricher).rows)
            enricher.close()
            rule = "kandji-device-deleted-or-mdm-removed"
            ops.set_enabled(state, store, rule, True, ("siem",))
            assert ops.run_due_windows(settings, state, store, rule, boundary)
        finally:
            store.close()

    code, out, err = run(["alerts", "list", "--format", "json"], capsys, monkeypatch)
    assert code == 0, err
    (alert,) = json.loads(out)
    assert alert["sources"] == [{"id": acme.id, "name": "Acme Corp"}]
    assert alert["devices"] == [{"device_id": device, "name": "", "serial": "", "record_url": None}]


def test_channel_add_refuses_plain_http_off_this_machine_and_a_bad_ca_file(
    home: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    for kind in ("webhook", "slack"):
        code, out, err = run(
            ["channel", "add", kind, "siem", "--url", "http://siem.example.com/hooks"],
            capsys,
            monkeypatch,
        )
        assert code == 1 and out == ""
        assert err.startswith("Error: Channel siem: the ") and err.count("\n") == 1, err
        assert "must start with https:// (plain http:// only to localhost" in err

    email = ["channel", "add", "email", "soc", "--smtp-host", "smtp.example.com"]
    email += ["--from", "kb@example.com", "--to", "soc@example.com"]
    missing = tmp_path / "private-ca.pem"
    code, out, err = run([*email, "--ca-file", str(missing)], capsys, monkeypatch)
    assert code == 1 and out == ""
    said = " ".join(err.split())
    assert said.startswith(f"Error: Channel soc: the CA file {missing} cannot be read")
    assert "Traceback" not in err

    certificate, _ = self_signed_certificate(tmp_path)
    code, out, err = run([*email, "--ca-file", str(certificate)], capsys, monkeypatch)
    assert code == 0, err
    code, out, _ = run(["channel", "list", "--format", "json"], capsys, monkeypatch)
    (listed,) = json.loads(out)
    assert listed["ca_file"] == str(certificate)
