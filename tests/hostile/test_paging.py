"""Hostile paging always ends: cursor cycles of any length, chains without end or past the
history asked, device lists that ignore offset or never end, and servers that trickle bytes.

Each is run as users run it (`logs sync`, `inventory sync`, `verify`, `serve` as real processes)
and must end with one sentence naming the problem, after few requests and in bounded time,
keeping what was stored before it. The time bounds are generous: they tell "ends" from "never
ends", not fast from slow.
"""

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hostile.kandji import (
    AUDIT_PATH,
    DEVICES_PATH,
    HostileKandji,
    add_source,
    cycling_pages,
    devices,
    endless_chain,
    endless_cursor,
    endless_devices,
    events_over,
    kandji_audit,
    kandji_bridge,
    kandji_device_list,
    offset_ignored_shuffled,
    renamed_cycle,
    trickling,
)
from hostile.tenant import MAPPING, add_tenant, serving, wait_for
from kandji_bridge.kandji.client import OLD_PAGES_ALLOWED

ENDS_WITHIN = 60  # seconds: hostile paging used to run until killed
SLOW = 0.25  # seconds between two bytes: every read is quick, a whole response takes minutes


def timed(
    *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = kandji_bridge(*args, env=env, timeout=ENDS_WITHIN * 2)
    return done, time.monotonic() - started


def stored_events(where: str = "1") -> int:
    counted = kandji_bridge(
        "logs",
        "query",
        f"SELECT count() FROM kandji_logs WHERE {where}",  # noqa: S608 (the tests' own text)
        "--format",
        "csv",
    )
    assert counted.returncode == 0, counted.stderr
    return int(counted.stdout.splitlines()[1])


def records() -> list[str]:
    exported = kandji_bridge("collection", "export", "ITAM", "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    return exported.stdout.splitlines()[1:]


def assert_one_sentence(done: subprocess.CompletedProcess, *phrases: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    for phrase in phrases:
        assert phrase in done.stderr, done.stderr


@pytest.fixture
def source(allow_hostile_kandji: HostileKandji) -> HostileKandji:
    """Source `acme` on the hostile server, added while it behaved; its requests forgotten."""
    add_source(allow_hostile_kandji)
    allow_hostile_kandji.requests.clear()
    return allow_hostile_kandji


@pytest.fixture
def tenant(allow_hostile_kandji: HostileKandji) -> HostileKandji:
    """Source `acme` and mapping MAPPING (400 devices), added while the server behaved."""
    allow_hostile_kandji.devices = devices(400)
    add_tenant(allow_hostile_kandji)
    allow_hostile_kandji.requests.clear()
    return allow_hostile_kandji


# -- the audit-log collector ---------------------------------------------------------------------


@pytest.mark.parametrize("period", [2, 5])
def test_logs_sync_stops_at_once_on_a_cursor_cycle_of_any_length(
    source: HostileKandji, period: int
) -> None:
    source.audit = cycling_pages(period, per_page=2)
    done, seconds = timed("logs", "sync", "acme")
    assert_one_sentence(
        done, "Kandji's audit events at", "repeat a page already read (a cursor cycle)"
    )
    # The first page is asked without a cursor, so coming back to it shows in its events: one
    # request more than the cycle, and not one more after that.
    assert f"after {period + 1} pages" in done.stderr
    assert source.count(AUDIT_PATH) == period + 1
    assert stored_events() == 2 * period
    assert seconds < ENDS_WITHIN


def test_logs_sync_stops_when_new_cursors_bring_back_pages_already_read(
    source: HostileKandji,
) -> None:
    source.audit = renamed_cycle(3)
    done, seconds = timed("logs", "sync", "acme")
    assert_one_sentence(done, "repeat a page already read (a cursor cycle) after 4 pages")
    assert source.count(AUDIT_PATH) == 4
    assert stored_events() == 3
    assert seconds < ENDS_WITHIN


def test_logs_sync_stops_a_chain_that_never_ends_at_the_page_ceiling(
    source: HostileKandji,
) -> None:
    source.audit = endless_cursor(per_page=1)
    done, seconds = timed("logs", "sync", "acme", env={"KANDJI_BRIDGE_MAX_AUDIT_PAGES": "30"})
    assert_one_sentence(done, "were still paging", "KANDJI_BRIDGE_MAX_AUDIT_PAGES")
    assert "after 30 pages" in done.stderr
    assert source.count(AUDIT_PATH) == 30
    assert stored_events() == 30  # every page read before the ceiling is kept
    assert seconds < ENDS_WITHIN


def test_logs_sync_stops_a_chain_that_runs_past_now(source: HostileKandji) -> None:
    # Page N is dated N hours after 3 hours ago: pages 0-3 are history, page 5 is the future.
    source.audit = endless_chain(datetime.now(UTC) - timedelta(hours=3), timedelta(hours=1))
    done, seconds = timed("logs", "sync", "acme")
    assert_one_sentence(done, "sent a page of events dated after now", "clock")
    assert source.count(AUDIT_PATH) <= 6
    assert stored_events("eventTime <= now()") == 4
    assert seconds < ENDS_WITHIN


def test_logs_sync_stops_a_chain_older_than_the_start_date_asked(source: HostileKandji) -> None:
    source.audit = endless_chain(datetime.now(UTC) - timedelta(days=60), timedelta(minutes=1))
    done, seconds = timed("logs", "sync", "acme", "--backfill-days", "7")
    assert_one_sentence(done, "pages in a row of events older than the start date asked")
    # The pages are stored (a server ignoring start_date may hold late events), then it stops.
    assert source.count(AUDIT_PATH) == OLD_PAGES_ALLOWED + 1
    assert stored_events() == OLD_PAGES_ALLOWED + 1
    assert seconds < ENDS_WITHIN


def test_logs_sync_gives_up_on_a_trickling_server_after_two_slow_tries(
    source: HostileKandji,
) -> None:
    source.events = events_over(3, datetime.now(UTC) - timedelta(hours=1))
    source.audit = trickling(kandji_audit, SLOW)
    done, seconds = timed("logs", "sync", "acme", env={"KANDJI_BRIDGE_RESPONSE_SECONDS": "1"})
    assert_one_sentence(done, "was still sending one response after 1 s (2 tries)")
    assert source.count(AUDIT_PATH) == 2
    assert seconds < ENDS_WITHIN


def test_logs_sync_stops_at_the_run_deadline_and_keeps_what_it_stored(
    source: HostileKandji,
) -> None:
    # Each page is quick enough on its own, but the chain goes on past the run's limit.
    source.audit = trickling(endless_cursor(per_page=1), 0.002)
    done, seconds = timed("logs", "sync", "acme", env={"KANDJI_BRIDGE_RUN_SECONDS": "3"})
    assert_one_sentence(done, "took longer than the 3 s one run may take", "KANDJI_BRIDGE_RUN")
    requests = source.count(AUDIT_PATH)
    assert 1 <= requests <= 10
    assert stored_events() >= requests - 1
    assert seconds < ENDS_WITHIN


# -- the device import ---------------------------------------------------------------------------


def test_inventory_sync_stops_on_a_list_that_ignores_offset_in_a_new_order(
    tenant: HostileKandji,
) -> None:
    tenant.device_list = offset_ignored_shuffled
    done, seconds = timed("inventory", "sync", MAPPING)
    assert_one_sentence(done, "Kandji's device list at", "ignores offset", "after 2 pages")
    assert "nothing written" in done.stderr
    assert tenant.count(DEVICES_PATH) == 2
    assert records() == []
    assert seconds < ENDS_WITHIN


def test_inventory_sync_stops_a_device_list_that_never_ends(tenant: HostileKandji) -> None:
    tenant.device_list = endless_devices
    done, seconds = timed("inventory", "sync", MAPPING, env={"KANDJI_BRIDGE_MAX_DEVICE_PAGES": "4"})
    assert_one_sentence(done, "was still paging", "KANDJI_BRIDGE_MAX_DEVICE_PAGES")
    assert tenant.count(DEVICES_PATH) == 4
    assert seconds < ENDS_WITHIN


def test_inventory_sync_gives_up_on_a_trickling_device_list(tenant: HostileKandji) -> None:
    tenant.device_list = trickling(kandji_device_list, SLOW)
    done, seconds = timed("inventory", "sync", MAPPING, env={"KANDJI_BRIDGE_RESPONSE_SECONDS": "1"})
    assert_one_sentence(done, "was still sending one response after 1 s (2 tries)")
    assert tenant.count(DEVICES_PATH) == 2
    runs = kandji_bridge("inventory", "runs", MAPPING)
    assert "still sending one response" in runs.stdout
    assert seconds < ENDS_WITHIN


def test_a_stopped_device_import_keeps_what_an_earlier_one_wrote(tenant: HostileKandji) -> None:
    first = kandji_bridge("inventory", "sync", MAPPING)
    assert first.returncode == 0, first.stderr
    tenant.device_list = offset_ignored_shuffled
    done, _ = timed("inventory", "sync", MAPPING)
    assert_one_sentence(done, "ignores offset")
    assert len(records()) == 400


# -- verify --------------------------------------------------------------------------------------


def test_verify_reads_one_page_of_each_list_however_hostile(source: HostileKandji) -> None:
    source.audit = cycling_pages(2)
    source.device_list = endless_devices
    done, seconds = timed("verify", "acme")
    assert done.returncode == 0, done.stdout + done.stderr
    assert source.count(AUDIT_PATH) == 1
    assert source.count(DEVICES_PATH) == 1
    assert seconds < ENDS_WITHIN


def test_verify_fails_a_trickling_server_in_bounded_time(source: HostileKandji) -> None:
    source.events = events_over(2, datetime.now(UTC) - timedelta(hours=1))
    source.devices = devices(3)
    source.audit = trickling(kandji_audit, SLOW)
    source.device_list = trickling(kandji_device_list, SLOW)
    done, seconds = timed("verify", "acme", env={"KANDJI_BRIDGE_RESPONSE_SECONDS": "1"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "was still sending one response after 1 s (2 tries)" in done.stdout
    assert source.count(AUDIT_PATH) + source.count(DEVICES_PATH) <= 4
    assert seconds < ENDS_WITHIN


# -- serve ---------------------------------------------------------------------------------------


def test_serve_shows_hostile_paging_as_the_source_error_not_ok(
    tenant: HostileKandji, tmp_path: Path
) -> None:
    tenant.audit = cycling_pages(3)
    tenant.device_list = offset_ignored_shuffled
    with serving(tmp_path / "serve.log") as (_, api):

        def failed_source() -> dict | None:
            source = api.get("/api/sources/acme").json()
            return source if source["last_error"] else None

        def failed_run() -> dict | None:
            runs = api.get(f"/api/mappings/{MAPPING}/runs").json()
            return runs[0] if runs and runs[0]["status"] == "failed" else None

        source = wait_for(failed_source, "the source's poll to fail")
        run = wait_for(failed_run, "the mapping's sync to fail")
        page = api.get("/sources").text
    assert source["status"] == "failing"
    assert "repeat a page already read (a cursor cycle) after 4 pages" in source["last_error"]
    assert "ignores offset" in " ".join(run["errors"])
    assert "cursor cycle" in page
    # One failed poll asks for the cycle once; a retry comes only after the retry interval.
    assert tenant.count(AUDIT_PATH) < 20
