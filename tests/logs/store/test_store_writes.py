"""Writes the disk does not take are errors: a full disk, a read-only folder, for real.

Each test mounts a small tmpfs (root only; CI runs as root) and fills it or makes it read-only,
because the embedded store's streaming insert reports success on both while storing nothing.
"""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kandji_bridge.logs.store import ChdbLogStore, QuarantineEntry, StoreWriteError

SOURCE = "src-acme"


def fill(folder: Path) -> Path:
    """Fill the disk under `folder` to the last byte; the filler file, to delete later."""
    filler = folder / "filler"
    # Unbuffered: a buffered file still holding the tail of a short write raised again on close.
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def rows(count: int, first: int = 0) -> list[dict]:
    start = datetime(2026, 11, 2, tzinfo=UTC)
    return [
        {
            "sourceID": SOURCE,
            "id": f"row-{n}",
            "eventID": f"evt-{n}",
            "kandjiEventId": f"evt-{n}",
            "eventTime": start + timedelta(seconds=n),
            "receivedAt": start,
            "sourceTTL": 0,
            "rawLog": f'{{"id": "evt-{n}", "pad": "{"x" * 1500}"}}',
        }
        for n in range(first, first + count)
    ]


def test_an_insert_on_a_full_disk_raises_and_the_rows_go_in_once_it_has_room(
    small_disk: Path,
) -> None:
    store = ChdbLogStore(str(small_disk / "logs"))
    try:
        store.ensure_schema()
        store.insert(rows(100))
        filler = fill(small_disk)
        with pytest.raises(StoreWriteError) as failed:
            store.insert(rows(500, first=100))
        message = str(failed.value)
        assert "did not store 500 of the 500 rows written to kandji_logs" in message
        assert "is full (" in message and "free)" in message
        assert "free some space" in message
        assert store.count(SOURCE) == 100
        filler.unlink()
        assert store.insert(rows(500, first=100)) == 500
        assert store.count(SOURCE) == 600
    finally:
        store.close()


def test_a_quarantine_insert_on_a_full_disk_raises(small_disk: Path) -> None:
    store = ChdbLogStore(str(small_disk / "logs"))
    entries = [
        QuarantineEntry(SOURCE, "occurred_at is not a time", f'{{"id": "q{n}"}}', f"q{n}")
        for n in range(3)
    ]
    try:
        store.ensure_schema()
        filler = fill(small_disk)
        with pytest.raises(StoreWriteError, match="rows written to kandji_logs_quarantine"):
            store.insert_quarantine(entries)
        assert store.quarantine_count(SOURCE) == 0
        filler.unlink()
        assert store.insert_quarantine(entries) == 3
        assert store.quarantine_count(SOURCE) == 3
    finally:
        store.close()


def test_an_insert_into_a_folder_made_read_only_raises(small_disk: Path) -> None:
    store = ChdbLogStore(str(small_disk / "logs"))
    try:
        store.ensure_schema()
        store.insert(rows(10))
        table = store.query(
            "SELECT data_paths[1] FROM system.tables WHERE name = 'kandji_logs'"
        ).rows[0][0]
        # The table's folder mounted over itself read-only: what a disk with errors turns into.
        subprocess.run(["mount", "--bind", table, table], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", table], check=True)
            with pytest.raises(StoreWriteError) as failed:
                store.insert(rows(50, first=10))
            assert "is read-only" in str(failed.value)
            assert "The log store did not store 50 of the 50 rows" in str(failed.value)
        finally:
            subprocess.run(["umount", table], check=True)
        assert store.count(SOURCE) == 10
    finally:
        store.close()


def test_rows_removed_between_two_inserts_do_not_fail_the_second(tmp_path: Path) -> None:
    """The count after an insert stands for the count before the next; when something else
    changed it meanwhile, the rows themselves are looked up instead of failing the insert."""
    store = ChdbLogStore(str(tmp_path / "logs"))
    try:
        store.ensure_schema()
        store.insert(rows(10))
        store.query("DELETE FROM kandji_logs WHERE eventID = 'evt-3'", read_only=False)
        assert store.insert(rows(20, first=10)) == 20
        assert store.count(SOURCE) == 29
        assert store.insert(rows(5, first=30)) == 5
    finally:
        store.close()


def test_a_store_on_a_read_only_disk_says_so_when_it_opens(small_disk: Path) -> None:
    store = ChdbLogStore(str(small_disk / "logs"))
    store.ensure_schema()
    store.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(StoreWriteError) as failed:
        ChdbLogStore(str(small_disk / "logs"))
    assert f"Cannot open the log store {small_disk / 'logs'}: the folder" in str(failed.value)
    assert "is read-only" in str(failed.value) and "make it writable" in str(failed.value)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kandji_bridge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_logs_sync_on_a_full_disk_exits_1_and_the_next_run_stores_every_event(
    small_disk: Path, home: Path, simulator_factory
) -> None:
    sim = simulator_factory(devices=5, events=600, history_days=20, seed=21)
    env = {
        **os.environ,
        "KANDJI_BRIDGE_HOME": str(home),  # the state DB stays on the big disk
        "KANDJI_BRIDGE_LOG_STORE": f"chdb://{small_disk / 'logs'}",
        "KANDJI_BRIDGE_ALLOWED_HOSTS": sim.host_port,
        "KANDJI_TOKEN": sim.token,
    }
    added = cli(env, "source", "add", "--name", "acme", "--url", sim.base_url,
                "--token-env", "KANDJI_TOKEN", "--no-verify")  # fmt: skip
    assert added.returncode == 0, added.stderr
    first = cli(env, "logs", "sync", "acme")
    assert first.returncode == 0, first.stderr
    sim.state.add_generated_events(700)
    filler = fill(small_disk)
    full = cli(env, "logs", "sync", "acme")
    assert full.returncode == 1, full.stdout
    assert "is full (" in full.stderr and "free some space" in full.stderr
    assert "Traceback" not in full.stderr and sim.token not in full.stderr + full.stdout
    assert "new events" not in full.stdout  # no summary claims events it did not store
    filler.unlink()
    again = cli(env, "logs", "sync", "acme")
    assert again.returncode == 0, again.stderr
    ids = cli(env, "logs", "query", "SELECT kandjiEventId FROM kandji_logs", "--format", "csv")
    stored = ids.stdout.split()[1:]
    assert len(stored) == len(set(stored)) == 1300
    assert set(stored) == {event["id"] for event in sim.events()}


def test_a_full_disk_under_the_state_database_is_said_as_such(
    small_disk: Path, tmp_path: Path
) -> None:
    env = {
        name: value for name, value in os.environ.items() if not name.startswith("KANDJI_BRIDGE_")
    }
    env |= {"KANDJI_BRIDGE_HOME": str(small_disk / "home"), "KANDJI_TOKEN": "t0ken-secret-123"}
    made = cli(env, "source", "list")  # creates the home and the state database
    assert made.returncode == 0, made.stderr
    fill(small_disk)
    added = cli(env, "source", "add", "--name", "acme", "--url", "https://acme.api.kandji.io",
                "--token-env", "KANDJI_TOKEN", "--no-verify")  # fmt: skip
    assert added.returncode == 1
    assert "is full" in added.stderr and "free some space" in added.stderr, added.stderr
    assert "KANDJI_BRIDGE_DATABASE_URL" not in added.stderr
    assert "Traceback" not in added.stderr and "t0ken-secret-123" not in added.stderr
