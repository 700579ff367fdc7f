"""The normalizer and the collector's transform stage against arbitrary events (hypothesis).

What must hold for any input: `normalize` returns a row or raises NormalizeError, nothing else;
through the transform stage and into a real chDB store, every event of a page is either stored
once or quarantined with its raw text, and nothing in a bad event stops the page.
"""

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kandji_bridge.kandji.payloads import parse_audit_page
from kandji_bridge.logs.enrich import Enricher, Geoip2FastDatabase
from kandji_bridge.logs.normalize import NormalizeContext, NormalizeError, full_row, normalize
from kandji_bridge.logs.schema import COLUMN_NAMES
from kandji_bridge.logs.store import ChdbLogStore, sql_string
from kandji_bridge.logs.transform import transform

from .strategies import any_event, audit_events

# Long enough that no generated event (1970 onwards) is past the TTL and dropped at a merge.
RETENTION_DAYS = 100_000
CTX = NormalizeContext(
    "ws-prop", "src-prop", RETENTION_DAYS, received_at=datetime(2025, 3, 6, tzinfo=UTC)
)
DEFAULT = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck))


def body_of(events: list, ensure_ascii: bool) -> bytes:
    """A Kandji audit page holding these events, as the server would send it."""
    page = {"next": None, "previous": None, "results": events}
    return json.dumps(page, ensure_ascii=ensure_ascii, allow_nan=True).encode("utf-8", "replace")


def check_normalize(data: object) -> None:
    raw = json.dumps(data, allow_nan=True)
    try:
        row = normalize(data, raw, CTX)
    except NormalizeError as exc:
        assert str(exc) and "\n" not in str(exc)  # one sentence, stored as the reason
        return
    assert tuple(full_row(row)) == COLUMN_NAMES
    assert row["eventID"] == data["id"] and row["rawLog"] == raw  # type: ignore[index]
    assert 1970 <= row["eventTime"].year < 2106


@DEFAULT
@given(any_event)
@example({"id": "01J", "occurred_at": "0001-01-01T00:00:00+01:00"})  # found: OverflowError
@example({"id": "01J", "occurred_at": "9999-12-31T23:59:59-01:00"})
def test_normalize_returns_a_row_or_a_normalize_error(data: object) -> None:
    check_normalize(data)


@pytest.mark.slow
@MANY
@given(any_event)
def test_normalize_returns_a_row_or_a_normalize_error_many(data: object) -> None:
    check_normalize(data)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    store = ChdbLogStore(str(tmp_path_factory.mktemp("prop") / "logs"))
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher([Geoip2FastDatabase()])


def check_page(store: ChdbLogStore, enricher: Enricher, events: list, ensure_ascii: bool) -> None:
    body = body_of(events, ensure_ascii)
    page, _ = parse_audit_page(body)  # whatever the elements are, the page is read
    assert len(page) == len(events)
    ctx = NormalizeContext("ws-prop", str(uuid.uuid4()), RETENTION_DAYS)
    out = transform(page, ctx, enricher)
    assert len(out.rows) + len(out.quarantine) == len(page)
    # One row per Kandji id, as the collector inserts them.
    rows = list({row["eventID"]: row for row in reversed(out.rows)}.values())
    assert store.insert(rows) == len(rows)
    store.insert_quarantine(out.quarantine)
    assert store.count(ctx.source_id) == len(rows)
    raws = {entry.raw_log for entry in out.quarantine}
    assert store.quarantine_count(ctx.source_id) == len(raws)
    rows_stored = store.query(
        "SELECT rawLog FROM kandji_logs WHERE sourceID = " + sql_string(ctx.source_id)  # noqa: S608
    ).rows
    stored = {r[0] for r in rows_stored}
    assert stored == {row["rawLog"] for row in rows}


pages = st.lists(audit_events() | any_event, min_size=1, max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(pages, st.booleans())
# found: a lone surrogate escape made the whole page's insert fail, so the source stalled
@example([{"id": "01J", "occurred_at": "2025-01-01T00:00:00Z", "action": "x\ud800"}], True)
def test_a_page_of_bad_events_is_stored_or_quarantined_whole(store, enricher, events, ascii_):
    check_page(store, enricher, events, ascii_)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(pages, st.booleans())
def test_a_page_of_bad_events_is_stored_or_quarantined_whole_many(store, enricher, events, ascii_):
    check_page(store, enricher, events, ascii_)
