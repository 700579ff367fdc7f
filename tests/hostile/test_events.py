"""Every event a hostile Kandji hands over is stored or quarantined, never dropped, and no event
blocks its source: `logs sync` runs as a real process against a real HTTP server."""

import contextlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hostile.kandji import (
    HostileKandji,
    add_source,
    event,
    event_with,
    events_over,
    json_reply,
    kandji_audit,
    kandji_bridge,
    start_date_ignored,
    with_bytes,
)
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.logs.collector import CollectorSource, collect
from kandji_bridge.logs.store import ChdbLogStore, LogStoreError, QuarantineEntry

NOT_UTF8 = "NOT-UTF8-BYTES"


def query(sql: str) -> list[dict]:
    done = kandji_bridge("logs", "query", sql, "--format", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def stored_ids() -> list[str]:
    return [row["kandjiEventId"] for row in query("SELECT kandjiEventId FROM kandji_logs")]


def sync_ok(server: HostileKandji) -> str:
    done = kandji_bridge("logs", "sync", "acme")
    assert done.returncode == 0, done.stdout + done.stderr
    assert server.token not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def malformed() -> dict[str, tuple[str, str]]:
    """Elements of `results` that are not events Kandji documents: (raw text, reason shown)."""
    deep = "[" * 50_000 + "]" * 50_000
    return {
        "no id": (event_with(drop=("id",)), "is missing or not a valid id"),
        "empty id": (event_with(id=""), "the event id '' is missing"),
        "number id": (event_with(id=7), "the event id 7 is missing"),
        "null id": (event_with(id=None), "the event id None is missing"),
        "object id": (event_with(id={"ulid": "01J"}), "the event id {'ulid': '01J'} is missing"),
        "deep": (
            f'{{"id": "01DEEP", "occurred_at": "2026-01-01T00:00:00Z", "new_state": {deep}}}',
            "is nested too deeply to read",
        ),
        "string": ('"device.view"', "the event is a JSON string, not an object"),
        "number": ("42", "the event is a JSON number, not an object"),
        "null": ("null", "the event is a JSON null, not an object"),
        "array": ('["01J"]', "the event is a JSON array, not an object"),
        "no occurred_at": (event_with(drop=("occurred_at",)), "occurred_at None is missing"),
        "bad occurred_at": (event_with(occurred_at="yesterday"), "is not an ISO 8601 timestamp"),
        "huge": (event_with(new_state={"script": "x" * 1_100_000}), "more than the 1,048,576"),
        "not UTF-8": (event_with(action=NOT_UTF8), "is not valid UTF-8 text"),
        "lone surrogate": (event_with(action="\ud800"), "lone UTF-16 surrogate"),
        "long number": ('{"id": "01LONG", "n": ' + "9" * 5_000 + "}", "cannot be read"),
        "invalid JSON": ('{"id": "01CTRL", "action": "a\x01b"}', "is not valid JSON"),
    }


def test_malformed_events_are_quarantined_and_the_rest_is_stored(
    home: Path, allow_hostile_kandji: HostileKandji
) -> None:
    server = allow_hostile_kandji
    good = events_over(600, datetime.now(UTC) - timedelta(hours=3))
    bad = malformed()
    twice = event("01DUPLICATE000000000000000A", datetime.now(UTC) - timedelta(hours=2))
    changed = event(
        "01DUPLICATE000000000000000A", datetime.now(UTC) - timedelta(hours=2), "device.delete"
    )
    odd_types = event_with(
        id="01ODDTYPES0000000000000000",
        action={"verb": "update"},
        new_state="text",
        metadata=[1, 2],
        target_id=12345,
        actor_type=True,
    )
    server.events = [
        *good[:250],
        *(raw for raw, _ in bad.values()),
        twice,
        twice,
        changed,
        odd_types,
        *good[250:],
    ]
    server.audit = with_bytes(kandji_audit, NOT_UTF8, b"caf\xc3\x28\xff")
    add_source(server)

    said = sync_ok(server)
    assert "602 new events" in said and f"{len(bad) + 1} quarantined" in said
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 602
    assert {"01DUPLICATE000000000000000A", "01ODDTYPES0000000000000000"} <= set(ids)
    assert {json.loads(raw)["id"] for raw in good} <= set(ids)
    [stored_twice] = query(
        "SELECT action, rawLog FROM kandji_logs WHERE kandjiEventId = '01DUPLICATE000000000000000A'"
    )
    assert stored_twice == {"action": "device.view", "rawLog": twice}  # the first one
    [odd] = query(
        "SELECT action, newState, metadata, targetId, actorType, rawLog FROM kandji_logs "
        "WHERE kandjiEventId = '01ODDTYPES0000000000000000'"
    )
    assert odd == {
        "action": '{"verb":"update"}',
        "newState": '"text"',
        "metadata": "[1,2]",
        "targetId": "12345",
        "actorType": "true",
        "rawLog": odd_types,
    }

    held = query("SELECT reason, rawLog FROM kandji_logs_quarantine")
    assert len(held) == len(bad) + 1
    reasons = {row["rawLog"]: row["reason"] for row in held}
    for name, (raw, reason) in bad.items():
        shown = raw.replace(NOT_UTF8, "caf\\xc3(\\xff")  # the bytes that are not UTF-8, shown
        assert reason in reasons[shown], name
    assert "another event in the same page has the id 01DUPLICATE" in reasons[changed]

    # The next poll fetches the newest of them again (the overlap): nothing grows.
    again = sync_ok(server)
    assert "0 new events" in again
    assert len(stored_ids()) == 602
    assert query("SELECT count() AS n FROM kandji_logs_quarantine") == [{"n": len(bad) + 1}]


def test_one_bad_element_never_fails_a_page_but_a_broken_page_still_does(
    home: Path, allow_hostile_kandji: HostileKandji
) -> None:
    server = allow_hostile_kandji
    server.events = [*events_over(3, datetime.now(UTC) - timedelta(hours=1)), "17"]
    add_source(server)
    assert "3 new events" in sync_ok(server)

    server.audit = lambda request, server: json_reply({"detail": "Maintenance."})
    done = kandji_bridge("logs", "sync", "acme")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert 'no "results" list' in done.stderr
    assert "run `kandji-bridge logs sync acme` again" in " ".join(done.stderr.split())


def test_an_event_dated_in_the_future_does_not_stop_later_polls(
    home: Path, allow_hostile_kandji: HostileKandji
) -> None:
    server = allow_hostile_kandji
    now = datetime.now(UTC)
    future = event("01FUTURE000000000000000000", datetime(2105, 6, 1, tzinfo=UTC))
    server.events = [*events_over(50, now - timedelta(hours=3)), future]
    add_source(server)
    first = sync_ok(server)
    assert "51 new events" in first

    later = [
        event(f"01LATER{i:019d}", now - timedelta(minutes=10) + timedelta(seconds=i))
        for i in range(20)
    ]
    server.events[-1:-1] = later  # Kandji sorts by occurred_at: the future event stays last
    second = sync_ok(server)
    assert "20 new events" in second
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 71
    assert "01FUTURE000000000000000000" in ids  # stored: it is what Kandji holds
    assert "2105" not in first + second  # "stored up to" the newest event not in the future


def test_events_older_than_the_checkpoint_are_stored_once(
    home: Path, allow_hostile_kandji: HostileKandji
) -> None:
    server = allow_hostile_kandji
    now = datetime.now(UTC)
    server.events = events_over(700, now - timedelta(hours=2))
    server.audit = start_date_ignored
    add_source(server)
    assert "700 new events" in sync_ok(server)

    # Recorded late, far older than the stored history's end, and a few new ones after it.
    late = event("01LATE00000000000000000000", now - timedelta(days=40))
    server.events += [
        late,
        *(event(f"01NEW{i:021d}", now - timedelta(seconds=30 - i)) for i in range(5)),
    ]
    assert "6 new events" in sync_ok(server)
    assert "0 new events" in sync_ok(server)
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 706
    assert "01LATE00000000000000000000" in ids


def test_an_event_kandji_records_late_beyond_the_overlap_is_collected_within_a_day(
    home: Path, allow_hostile_kandji: HostileKandji
) -> None:
    server = allow_hostile_kandji  # start_date honoured, as Kandji does
    now = datetime.now(UTC)
    server.events = events_over(300, now - timedelta(hours=3))
    add_source(server)
    assert "300 new events" in sync_ok(server)

    # Recorded now, dated an hour before the stored history's end: far beyond the overlap.
    server.events.append(event("01LATE00000000000000000000", now - timedelta(hours=4)))
    server.events.append(event("01NEW000000000000000000000", now - timedelta(seconds=10)))
    assert "2 new events" in sync_ok(server)
    assert {"01LATE00000000000000000000", "01NEW000000000000000000000"} <= set(stored_ids())

    # The day's re-read is done: the next pass asks from the checkpoint minus the overlap only.
    assert "0 new events" in sync_ok(server)
    asked = datetime.fromisoformat(server.requests[-1].params["start_date"].replace("Z", "+00:00"))
    assert now - timedelta(minutes=3) < asked < now
    ids = stored_ids()
    assert len(ids) == len(set(ids)) == 302


class QuarantineFailsOnce(ChdbLogStore):
    """A real store whose first quarantine write fails, as a full disk or a crash would."""

    failed = False

    def insert_quarantine(self, entries: Sequence[QuarantineEntry]) -> int:
        if not self.failed:
            self.failed = True
            raise LogStoreError("The log store refused the query: not enough space")
        return super().insert_quarantine(entries)


async def test_a_failed_quarantine_write_loses_no_bad_event(
    tmp_path: Path, hostile_kandji: HostileKandji
) -> None:
    start = datetime.now(UTC) - timedelta(hours=1)
    # Dated before the good events: once they are stored, no pass asks for its time again.
    bad = event("x" * 129, start - timedelta(minutes=30))
    hostile_kandji.events = [bad, *events_over(200, start)]
    store = QuarantineFailsOnce(str(tmp_path / "logs"))
    store.ensure_schema()
    source = CollectorSource("src-quarantine", "acme", 365)
    try:
        for _ in range(2):
            async with KandjiClient(
                hostile_kandji.url,
                hostile_kandji.token,
                allowed_hosts=frozenset({hostile_kandji.host_port}),
            ) as client:
                with contextlib.suppress(LogStoreError):
                    await collect(client, store, source, "ws")
        assert store.count(source.id) == 200
        assert [entry.raw_log for entry in store.quarantined(source.id)] == [bad]
    finally:
        store.close()
