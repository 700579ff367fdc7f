"""`collection`, `mapping` and `inventory` as a user runs them, against the simulator over HTTP."""

import csv
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.cli import main
from kandji_bridge.config import Settings
from kandji_bridge.db import open_state
from kandji_bridge.inventory.fields import CATALOG
from kandji_bridge.simulator.server import RunningSimulator

ITAM = [
    "--field", "Device ID:text:unique", "--field", "Serial:text:unique", "--field", "Name:text",
    "--field", "Tags:list", "--field", "Last Check In:datetime", "--field", "Missing:boolean",
    "--field", "Model Identifier:text",
]  # fmt: skip
MAPPING = [
    "mapping", "create", "--name", "Kandji Device Import", "--source", "sim", "--entity",
    "devices", "--collection", "ITAM", "--identifier", "device_id=Device ID",
    "--field", "serial_number=Serial", "--field", "device_name=Name", "--field", "tags=Tags",
    "--field", "last_check_in=Last Check In", "--field", "is_missing=Missing",
]  # fmt: skip


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


@pytest.fixture
def sim_source(settings: Settings, allow_simulator: RunningSimulator) -> RunningSimulator:
    with open_state(settings) as state:
        sources.add_source(state, "sim", allow_simulator.base_url, allow_simulator.token)
    return allow_simulator


def test_the_seeds_flow_from_the_command_line(
    sim_source: RunningSimulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # tables unwrapped
    code, out, err = run(["collection", "create", "ITAM", *ITAM], capsys)
    assert code == 0, err
    assert out.strip() == "Created collection ITAM with 7 fields (unique: Device ID, Serial)."

    code, out, err = run(MAPPING, capsys)
    assert code == 0, err
    assert "Created mapping Kandji Device Import: devices of source sim into collection ITAM, " \
        "identified by device_id → Device ID, 6 fields, every 60 minutes, removed devices: keep." \
        in out  # fmt: skip
    assert "kandji-bridge inventory sync 'Kandji Device Import'" in out

    code, out, _ = run(["inventory", "sync", "Kandji Device Import", "--dry-run"], capsys)
    assert code == 0
    assert out.splitlines() == [
        "Dry run: nothing was written.",
        "Mapping Kandji Device Import: 40 devices listed; would be created 40, would be updated "
        "0, unchanged 0, skipped 0, conflicts 0.",
        "API requests: 1 (1 device list, 0 device details).",
        "Add --verbose to see each record, field by field.",
    ]
    code, out, _ = run(
        ["inventory", "sync", "Kandji Device Import", "--dry-run", "--verbose"], capsys
    )
    assert code == 0
    assert out.startswith("Dry run: nothing was written.\ncreate record '")
    assert "    Serial: '" in out
    assert (
        "Mapping Kandji Device Import: 40 devices listed; would be created 40, would be updated "
        "0, unchanged 0, skipped 0, conflicts 0." in out
    )

    code, out, _ = run(["inventory", "sync", "Kandji Device Import"], capsys)
    assert code == 0
    assert out.splitlines() == [
        "Mapping Kandji Device Import: 40 devices listed; created 40, updated 0, unchanged 0, "
        "skipped 0, conflicts 0.",
        "API requests: 1 (1 device list, 0 device details).",
    ]

    device = sim_source.devices[4]
    old_name = device.device_name
    sim_source.state.rename_device(device.device_id, "Front Desk iPad")
    dry_run = ["inventory", "sync", "Kandji Device Import", "--dry-run", "--verbose"]
    code, out, _ = run(dry_run, capsys)
    assert f"update record '{device.device_id}' from device Front Desk iPad (" in out
    assert f"    Name: {old_name!r} → 'Front Desk iPad'" in out
    assert "would be updated 1, unchanged 39" in out

    code, out, _ = run(["inventory", "sync", "Kandji Device Import"], capsys)
    assert "created 0, updated 1, unchanged 39" in out

    code, out, _ = run(["collection", "list"], capsys)
    assert "ITAM" in out and "40" in out and "Kandji Device Import" in out
    code, out, _ = run(["collection", "show", "ITAM"], capsys)
    assert "Device ID" in out and "Records: 40" in out
    assert "Mappings: Kandji Device Import" in out
    code, out, _ = run(["mapping", "list"], capsys)
    assert code == 0 and "succeeded" in out
    code, out, _ = run(["inventory", "runs", "Kandji Device Import"], capsys)
    lines = out.splitlines()
    assert "succeeded" in lines[0] and "created 0, updated 1, unchanged 39" in lines[0]
    assert "created 40" in lines[1] and "1 API requests (0 device details)" in lines[1]
    code, out, _ = run(["inventory", "runs", "Kandji Device Import", "--format", "json"], capsys)
    listed = json.loads(out)
    assert code == 0 and [(r["status"], r["created"], r["updated"]) for r in listed] == [
        ("succeeded", 0, 1),
        ("succeeded", 40, 0),
    ]
    assert listed[0]["started_at"] >= listed[1]["started_at"] and listed[0]["errors"] == []


def test_export_opens_cleanly_as_csv_and_json(
    sim_source: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["collection", "create", "ITAM", *ITAM], capsys)[0] == 0
    assert run(MAPPING, capsys)[0] == 0
    assert run(["inventory", "sync", "Kandji Device Import"], capsys)[0] == 0

    code, exported, _ = run(["collection", "export", "ITAM"], capsys)
    assert code == 0 and exported.startswith("\ufeff")  # a BOM: spreadsheets read UTF-8
    rows = list(csv.reader(io.StringIO(exported.removeprefix("\ufeff"), newline="")))
    assert rows[0] == [
        "Device ID", "Serial", "Name", "Tags", "Last Check In", "Missing", "Model Identifier"
    ]  # fmt: skip
    by_id = {row[0]: row for row in rows[1:]}
    assert len(by_id) == 40
    device = sim_source.devices[0]
    row = by_id[device.device_id]
    assert row[1:3] == [device.serial_number, device.device_name]
    assert row[3] == ", ".join(tag.name for tag in device.tags)
    assert len(row[4]) == 19 and row[4][10] == " "  # 2026-11-21 13:24:33
    assert row[5] in ("TRUE", "FALSE") and row[6] == ""

    code, exported, _ = run(["collection", "export", "ITAM", "--format", "json"], capsys)
    items = json.loads(exported)
    assert len(items) == 40
    item = next(i for i in items if i["Device ID"] == device.device_id)
    assert list(item) == rows[0]
    assert item["Tags"] == ([tag.name for tag in device.tags] or None)
    assert item["Missing"] is device.is_missing
    assert item["Last Check In"].endswith("Z") and item["Model Identifier"] is None


def test_mapping_fields_lists_the_catalog_with_its_recommendations(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run(["mapping", "fields"], capsys)
    assert code == 0
    for field in CATALOG.values():
        assert field.key in out and field.label in out
    assert "Recommended unique identifier" in out
    assert "Common and acceptable identifier" in out


def test_lists_piped_or_narrow_keep_every_key_whole_and_print_json(
    sim_source: RunningSimulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # a narrow window, output not a terminal
    code, out, _ = run(["mapping", "fields"], capsys)
    assert code == 0
    keys = [line.split("\t")[0] for line in out.splitlines()]
    assert keys == ["key", *CATALOG]  # supplemental_build_version and all, whole
    code, out, _ = run(["mapping", "fields", "--format", "json"], capsys)
    fields = [json.loads(line) for line in out.splitlines()]
    assert [f["key"] for f in fields] == list(CATALOG)
    assert set(fields[0]) == {"key", "label", "type", "from", "recommendation"}

    assert run(["collection", "create", "Company Laptop Fleet", *ITAM], capsys)[0] == 0
    long_name = [*MAPPING[:9], "Company Laptop Fleet", *MAPPING[10:]]
    assert run(long_name, capsys)[0] == 0
    code, out, _ = run(["mapping", "list"], capsys)
    assert out.splitlines()[1].split("\t")[:4] == [
        "Kandji Device Import", "sim", "Company Laptop Fleet", "device_id → Device ID"
    ]  # fmt: skip
    code, out, _ = run(["mapping", "list", "--format", "json"], capsys)
    (mapping,) = [json.loads(line) for line in out.splitlines()]
    assert mapping["identifier"] == {"kandji": "device_id", "field": "Device ID"}
    assert mapping["enabled"] is True and mapping["last_sync"] is None
    assert {"kandji": "serial_number", "field": "Serial"} in mapping["fields"]
    code, out, _ = run(["collection", "list"], capsys)
    assert out.splitlines()[1].split("\t") == [
        "Company Laptop Fleet", "7", "0", "Kandji Device Import"
    ]  # fmt: skip
    code, out, _ = run(["collection", "list", "--format", "json"], capsys)
    (collection,) = [json.loads(line) for line in out.splitlines()]
    assert collection["name"] == "Company Laptop Fleet"
    assert collection["mappings"] == ["Kandji Device Import"] and collection["records"] == {}
    assert collection["fields"][0] == {"label": "Device ID", "type": "text", "unique": True}


def test_bad_input_is_refused_with_one_sentence_and_the_right_exit_code(
    settings: Settings, sim_source: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["collection", "create", "X", "--field", "Serial:texty"], capsys)
    assert code == 2 and "use one of text, number, boolean, date, datetime, list" in err
    code, _, err = run(["collection", "create", "X"], capsys)
    assert code == 2 and "Give the collection's fields with --field" in err
    assert run(["collection", "create", "ITAM", *ITAM], capsys)[0] == 0

    code, _, err = run([*MAPPING[:11], "device_name=Name"], capsys)
    assert code == 1
    assert err.startswith("Error: The identifier must be mapped to a field marked unique")
    assert "its unique fields are 'Device ID', 'Serial'." in err
    code, _, err = run([*MAPPING[:11], "device_id"], capsys)
    assert code == 2 and "is not a field pair" in err
    code, _, err = run(["inventory", "sync", "nope"], capsys)
    assert code == 1
    assert (
        err.strip() == "Error: No mapping named nope; `kandji-bridge mapping list` shows the names."
    )

    # A token that may list devices but not read their details: refused before saving.
    sim_source.state.set_token("list-only", {"devices"})
    with open_state(settings) as state:
        sources.add_source(state, "listing", sim_source.base_url, "list-only")
    with_details = [*MAPPING[:5], "listing", *MAPPING[6:], "--field", "memory=Model Identifier"]
    code, _, err = run(with_details, capsys)
    assert code == 1
    assert err.startswith("Error: Mapping Kandji Device Import was not saved: The API token")
    assert '"Device details" permission (403)' in err
    code, _, err = run(["mapping", "list"], capsys)
    assert "No mappings yet" in err


def test_commands_through_a_real_process(home: Path) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    executable = shutil.which("kandji-bridge")
    assert executable, "kandji-bridge is not installed: pip install -e '.[test]'"
    command = [executable]

    def kandji_bridge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=60
        )

    created = kandji_bridge("collection", "create", "Laptops", "--field", "Serial:text:unique")
    assert created.returncode == 0, created.stderr
    exported = kandji_bridge("collection", "export", "Laptops")
    assert exported.returncode == 0 and exported.stdout == "\ufeffSerial\n"
    missing = kandji_bridge("collection", "show", "Desktops")
    assert missing.returncode == 1
    assert missing.stderr.startswith("Error: No collection named Desktops;")


def test_a_source_in_use_by_a_mapping_is_kept_until_the_mapping_is_removed(
    sim_source: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["collection", "create", "ITAM", *ITAM], capsys)[0] == 0
    assert run(MAPPING, capsys)[0] == 0
    assert run(["inventory", "sync", "Kandji Device Import"], capsys)[0] == 0

    code, _, err = run(["source", "remove", "sim"], capsys)
    assert code == 1
    assert "is the Kandji connection of mapping 'Kandji Device Import'" in err
    assert "mapping remove" in err and "Traceback" not in err

    code, out, _ = run(["mapping", "remove", "Kandji Device Import"], capsys)
    assert code == 0 and "keeps its records" in out
    code, out, _ = run(["collection", "export", "ITAM", "--format", "json"], capsys)
    assert len(json.loads(out)) == 40
    assert run(["source", "remove", "sim"], capsys)[0] == 0


def test_mapping_update_edits_and_a_breaking_edit_says_what_to_do_and_changes_nothing(
    sim_source: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["collection", "create", "ITAM", *ITAM], capsys)[0] == 0
    assert run(MAPPING, capsys)[0] == 0
    name = "Kandji Device Import"
    code, out, err = run(["mapping", "update", name, "--identifier", "device_id=Name"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "'Name' of collection ITAM is not" in err
    code, out, err = run(["mapping", "update", name, "--remove-field", "Device ID"], capsys)
    assert code == 1 and "is the Unique Identifier of mapping" in err
    code, out, err = run(["mapping", "update", name], capsys)
    assert code == 2 and "Say what to change" in err  # a usage error, as elsewhere
    code, out, err = run(
        ["mapping", "update", name, "--remove-field", "Tags", "--field",
         "model_identifier=Model Identifier", "--disable", "--schedule-minutes", "15",
         "--no-verify"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert " ".join(out.split()) == (
        "Updated mapping Kandji Device Import: identified by device_id → Device ID, 6 fields, "
        "every 15 minutes, removed devices: keep, disabled (not synced on its schedule)."
    )
    code, out, _ = run(["mapping", "update", name, "--enable"], capsys)
    assert code == 0 and out.rstrip().endswith("enabled.")


def test_collection_update_and_remove_name_the_mapping_in_the_way_and_change_nothing(
    sim_source: RunningSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["collection", "create", "ITAM", *ITAM], capsys)[0] == 0
    assert run(MAPPING, capsys)[0] == 0
    assert run(["inventory", "sync", "Kandji Device Import"], capsys)[0] == 0
    _, before, _ = run(["collection", "show", "ITAM"], capsys)
    code, _, err = run(["collection", "update", "ITAM", "--remove-field", "Serial"], capsys)
    assert code == 1 and "Traceback" not in err
    assert "Mapping 'Kandji Device Import' fills the field 'Serial'" in " ".join(err.split())
    code, _, err = run(["collection", "remove", "ITAM", "--yes"], capsys)
    assert code == 1 and "filled by mapping 'Kandji Device Import'" in " ".join(err.split())
    code, _, err = run(["collection", "remove", "ITAM"], capsys)  # not a terminal: no prompt
    assert code == 2 and "deletes collection ITAM and its 40 records" in " ".join(err.split())
    assert run(["collection", "show", "ITAM"], capsys)[1] == before

    code, out, err = run(
        ["collection", "update", "ITAM", "--rename", "Fleet", "--add-field", "Room:text",
         "--remove-field", "Model Identifier"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "Updated collection Fleet: " in out and "Room (text)" in out
    assert "Model Identifier" not in out
    assert run(["mapping", "remove", "Kandji Device Import"], capsys)[0] == 0
    code, out, err = run(["collection", "remove", "Fleet", "--yes"], capsys)
    assert code == 0, err
    assert " ".join(out.split()) == (
        "Deleted collection Fleet and its 40 records with their history."
    )
