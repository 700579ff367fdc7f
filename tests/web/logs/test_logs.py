"""The logs pages and /api/logs: explorer, event page, SQL page and CSV, against a chDB store."""

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.db.models import Collection, MappedDevice, Mapping, Record, Source
from kandji_bridge.logs import search as logsearch
from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.logs.schema import COLUMN_NAMES
from kandji_bridge.service.runtime import Runtime

DEVICE_ID = "5c6c7d04-0000-4000-8000-00000000d001"


def event(now: datetime, number: int, minutes_ago: int, **fields: object) -> tuple[dict, str]:
    """An audit event as Kandji sends it, and its JSON text."""
    data = {
        "id": f"01JTEST{number:019d}",
        "action": "update",
        "occurred_at": (now - timedelta(minutes=minutes_ago)).isoformat(),
        "actor_id": "a1",
        "actor_type": "user",
        "target_id": f"bp-{number}",
        "target_type": "blueprint",
        "target_component": "",
        "new_state": {"name": f"Blueprint {number}"},
        "metadata": {"ip_address": "81.2.69.142", "actor_email": "ana@example.com"},
        **fields,
    }
    return data, json.dumps(data)


def events(now: datetime) -> list[tuple[dict, str]]:
    return [
        event(now, 1, 5),
        event(now, 2, 30, action="delete"),
        event(now, 3, 90, actor_type="api_token", actor_id="tok-1", metadata={}),
        event(
            now,
            4,
            60 * 30,
            action="view_recovery_key",
            target_type="device",
            target_id=DEVICE_ID,
            new_state={"device_name": "Ana's MacBook Pro"},
        ),
        *(event(now, 10 + n, 120 + n) for n in range(60)),
    ]


@pytest.fixture
def now() -> datetime:
    """Taken when the test starts, so a long suite cannot move events out of "the last hour"."""
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def stored(runtime: Runtime, now: datetime) -> list[dict]:
    ctx = NormalizeContext("ws-web", "src-web", 36500, received_at=now)
    rows = [normalize(data, raw, ctx) for data, raw in events(now)]
    runtime.store.insert(rows)
    return rows


def row_id(rows: list[dict], number: int) -> str:
    return next(r["id"] for r in rows if r["kandjiEventId"] == f"01JTEST{number:019d}")


def test_explorer_shows_histogram_rows_filters_and_pages(client: TestClient, stored) -> None:
    page = client.get("/logs")
    assert page.status_code == 200
    html = page.text
    assert "<svg" in html and html.count("<rect") >= 40
    assert "63 events" in html  # 24 h: all but the one 30 hours old
    assert html.count('class="clickable"') == 50
    assert "blueprint.update" in html and "ana@example.com" in html and "81.2.69.142" in html
    assert '<option value="delete"' in html and '<option value="api_token"' in html
    assert "Older →" in html
    second = client.get("/logs", params={"page": 2}).text
    assert second.count('class="clickable"') == 13 and "← Newer" in second


def test_explorer_search_filters_and_ranges_narrow_the_rows(client: TestClient, stored) -> None:
    by_text = client.get("/logs", params={"q": "BLUEPRINT 3"}).text
    assert "1 event<" in by_text  # "Blueprint 3" only (not 30-39: those are outside the text)
    by_action = client.get("/logs", params={"action": "delete"}).text
    assert by_action.count('class="clickable"') == 1 and "blueprint.delete" in by_action
    week = client.get("/logs", params={"range": "7d"}).text
    assert "64 events" in week and "device.view_recovery_key" in week
    hour = client.get("/logs", params={"range": "1h"}).text
    assert "2 events" in hour


def test_a_text_over_more_events_than_a_second_allows_counts_the_newest_and_says_so(
    client: TestClient, runtime: Runtime, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A week's buckets are 3 hours. The newest bucket of the range holds 3 events, the one before
    # it 20, the one before that 30; a budget of 10 events counts only the newest.
    newest = datetime.fromtimestamp(int(now.timestamp()) // 10800 * 10800, UTC) - timedelta(days=2)
    minutes = [10, 20, 30] + [-170 + n for n in range(20)] + [-350 + n for n in range(30)]
    ctx = NormalizeContext("ws-web", "src-web", 36500, received_at=now)
    made = [event(newest, n, -m, target_type="device") for n, m in enumerate(minutes)]
    runtime.store.insert([normalize(data, raw, ctx) for data, raw in made])
    monkeypatch.setattr(logsearch, "TEXT_HISTOGRAM_ROWS", 10)
    week = {
        "range": "custom",
        "from": (newest - timedelta(days=6)).strftime("%Y-%m-%dT%H:%M"),
        "to": (newest + timedelta(hours=2, minutes=59)).strftime("%Y-%m-%dT%H:%M"),
        "q": "DEVICE",
    }
    page = client.get("/logs", params=week).text
    assert "3 events<" in page
    shown = re.search(r'id="uncounted">since ([^<]+) UTC, .*?([\d,]+) older events', page, re.S)
    assert shown and shown[1] == f"{newest:%Y-%m-%d %H:%M}" and shown[2] == "50"
    assert page.count('class="uncounted"') == page.count("<rect") - 1 > 40
    link = re.search(r'href="(/logs\?[^"]*count=all[^"]*)"', page)
    assert link and "q=DEVICE" in link[1]
    whole = client.get(link[1].replace("&amp;", "&")).text
    assert "53 events<" in whole and 'id="uncounted"' not in whole
    # Without text the histogram is read from the projection and counts every bucket.
    assert "53 events<" in client.get("/logs", params={**week, "q": ""}).text


def test_counting_the_whole_range_counts_against_the_users_query_caps(
    client: TestClient, api: TestClient, runtime: Runtime, admin: users.UserInfo, stored
) -> None:
    whole = {"range": "7d", "q": "ana", "count": "all"}
    assert "63 events<" in client.get("/logs", params=whole).text
    with runtime.store.user_session(admin.id), runtime.store.user_session(admin.id):
        busy = client.get("/logs", params=whole)
        assert busy.status_code == 429
        assert "You have 2 queries running, the most one user may run at once" in busy.text
        assert "63 events<" in client.get("/logs", params={**whole, "count": ""}).text
        refused = api.get("/api/logs/histogram", params={"q": "ana"})
        assert refused.status_code == 429 and "You have 2 queries" in refused.json()["detail"]
        assert api.get("/api/logs/histogram").status_code == 200  # no text: not a user query


def test_htmx_gets_only_the_results_and_the_filters_out_of_band(client, stored) -> None:
    partial = client.get("/logs", params={"actorType": "api_token"}, headers={"HX-Request": "1"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert 'id="filters" class="row" hx-swap-oob="true"' in partial.text
    assert partial.text.count('class="clickable"') == 1


def test_a_bad_custom_range_shows_field_errors_and_keeps_the_input(client, stored) -> None:
    page = client.get("/logs", params={"range": "custom", "from": "yesterday", "q": "keep me"})
    assert page.status_code == 400
    assert "Write the time as YYYY-MM-DDTHH:MM (UTC)." in page.text
    assert 'value="keep me"' in page.text and 'value="yesterday"' in page.text
    reversed_range = client.get(
        "/logs", params={"range": "custom", "from": "2025-03-02T00:00", "to": "2025-03-01T00:00"}
    )
    assert reversed_range.status_code == 400
    assert "The end is before the start" in reversed_range.text


def test_event_page_shows_every_column_and_pretty_raw_log(client, stored) -> None:
    page = client.get(f"/logs/events/{row_id(stored, 1)}")
    assert page.status_code == 200
    for name in COLUMN_NAMES:
        assert f'<th class="mono">{name}</th>' in page.text
    assert "All 46 columns" in page.text
    assert "&#34;action&#34;: &#34;update&#34;,\n  &#34;" in page.text  # indented rawLog
    assert "ana@example.com" in page.text  # the actor map
    assert client.get("/logs/events/nope", headers={"Accept": "text/html"}).status_code == 404


def test_a_device_event_links_to_its_asset_record(runtime: Runtime, client, stored) -> None:
    with runtime.state.session() as session:
        source = Source(name="acme", api_url="https://acme.api.kandji.io", token_ciphertext="x")
        collection = Collection(name="Company Laptops")
        session.add_all([source, collection])
        session.flush()
        record = Record(collection_id=collection.id)
        mapping = Mapping(name="Macs", source_id=source.id, collection_id=collection.id)
        session.add_all([record, mapping])
        session.flush()
        session.add(MappedDevice(mapping_id=mapping.id, device_id=DEVICE_ID, record_id=record.id))
        record_id = record.id
    device_event = row_id(stored, 4)
    page = client.get(f"/logs/events/{device_event}").text
    assert f'href="/collections/Company%20Laptops/records/{record_id}"' in page
    other = client.get(f"/logs/events/{row_id(stored, 1)}").text
    assert "/collections/" not in other
    detail = client.get(f"/api/logs/events/{device_event}").json()
    assert detail["asset_records"] == [
        {
            "collection": "Company Laptops",
            "mapping": "Macs",
            "record_id": record_id,
            "url": f"/collections/Company%20Laptops/records/{record_id}",
        }
    ]


def test_sql_page_runs_a_query_and_downloads_csv(client: TestClient, stored) -> None:
    sql = "SELECT action, count() AS n FROM kandji_logs GROUP BY action ORDER BY action"
    page = client.get("/logs/sql", params={"q": sql})
    assert page.status_code == 200
    assert '<th>action<br><small class="muted type">String</small></th>' in page.text
    assert "UInt64" in page.text and "3 rows" in page.text
    link = re.search(r'href="(/logs/sql\.csv\?[^"]+)"', page.text)
    assert link
    download = client.get(link[1].replace("&amp;", "&"))
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    assert list(csv.reader(io.StringIO(download.text))) == [
        ["action", "n"],
        ["delete", "1"],
        ["update", "62"],
        ["view_recovery_key", "1"],
    ]


def test_sql_page_truncates_long_results_and_says_so(client, stored) -> None:
    page = client.get("/logs/sql", params={"q": "SELECT number FROM numbers(1200)"}).text
    assert "the first 500 are shown" in page
    assert page.count("<tr>") == 501  # header + 500 rows
    full = client.get("/logs/sql.csv", params={"q": "SELECT number FROM numbers(1200)"})
    assert len(full.text.splitlines()) == 1201


@pytest.mark.parametrize(
    "sql",
    ["DROP TABLE kandji_logs", "drop table kandji_logs; ", "SELECT 1; DROP TABLE kandji_logs"],
)
def test_sql_page_refuses_writes_in_one_sentence(client, stored, sql: str) -> None:
    page = client.get("/logs/sql", params={"q": sql})
    assert page.status_code == 400
    alert = re.search(r'<p class="alert error" role="alert" id="sql-error">([^<]+)</p>', page.text)
    assert alert and alert[1].count(". ") == 0 and alert[1].endswith(".")
    assert 'aria-invalid="true"' in page.text and f"{sql}</textarea>" in page.text
    htmx = client.get("/logs/sql", params={"q": sql}, headers={"HX-Request": "1"})
    assert htmx.status_code == 200 and alert[1] in htmx.text  # htmx swaps 200s only
    csv_refused = client.get("/logs/sql.csv", params={"q": sql}, headers={"Accept": "text/html"})
    assert csv_refused.status_code == 400
    assert client.get("/api/logs/events").status_code == 200  # the table is still there


def test_api_events_histogram_and_facets(api: TestClient, stored, now: datetime) -> None:
    first = api.get("/api/logs/events", params={"limit": 10})
    assert first.status_code == 200
    body = first.json()
    assert len(body["events"]) == 10 and body["has_more"] and body["next_cursor"]
    assert body["events"][0]["eventName"] == "blueprint.update"
    assert body["events"][0]["actor"] == "ana@example.com"
    nxt = api.get("/api/logs/events", params={"limit": 10, "cursor": body["next_cursor"]}).json()
    by_offset = api.get("/api/logs/events", params={"limit": 10, "offset": 10}).json()
    assert [e["id"] for e in nxt["events"]] == [e["id"] for e in by_offset["events"]]
    week = {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
    device = api.get("/api/logs/events", params={**week, "targetType": "device"}).json()
    assert [e["targetId"] for e in device["events"]] == [DEVICE_ID]
    assert device["events"][0]["target"] == "Ana's MacBook Pro"
    text = api.get("/api/logs/events", params={**week, "q": "RECOVERY"}).json()
    assert len(text["events"]) == 1
    histogram = api.get("/api/logs/histogram", params=week).json()
    assert histogram["total"] == 64 and histogram["bucket_seconds"] == 3 * 3600
    assert sum(b["count"] for b in histogram["buckets"]) == 64
    facets = api.get("/api/logs/facets", params=week).json()
    assert facets["actorType"] == ["api_token", "user"]
    reversed_range = api.get("/api/logs/events", params={"from": week["to"], "to": week["from"]})
    assert reversed_range.status_code == 400
    assert "ends before it starts" in reversed_range.json()["detail"]


def test_api_event_has_every_column(api: TestClient, stored) -> None:
    detail = api.get(f"/api/logs/events/{row_id(stored, 2)}").json()
    assert list(detail["columns"]) == list(COLUMN_NAMES)
    assert detail["columns"]["action"] == "delete" and detail["asset_records"] == []
    missing = api.get("/api/logs/events/nope")
    assert missing.status_code == 404 and "No stored event" in missing.json()["detail"]


def test_api_query_json_csv_and_refusal(api: TestClient, stored) -> None:
    sql = "SELECT eventName, count() AS n FROM kandji_logs GROUP BY eventName ORDER BY n DESC"
    result = api.post("/api/logs/query", json={"sql": sql}).json()
    assert result["columns"] == ["eventName", "n"] and result["types"] == ["String", "UInt64"]
    assert result["rows"][0] == ["blueprint.update", 62] and not result["truncated"]
    limited = api.post("/api/logs/query", json={"sql": "SELECT * FROM numbers(10)", "limit": 3})
    assert limited.json()["truncated"] and len(limited.json()["rows"]) == 3
    as_csv = api.post("/api/logs/query", params={"format": "csv"}, json={"sql": sql})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0] == "eventName,n"
    refused = api.post("/api/logs/query", json={"sql": "/* hi */ DROP TABLE kandji_logs"})
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("DROP statements cannot run here")
    assert api.post("/api/logs/query", json={"sql": "SELECT count() FROM kandji_logs"}).json()[
        "rows"
    ] == [[64]]


def test_api_query_needs_csrf_from_a_browser_session(client: TestClient, stored) -> None:
    body = {"sql": "SELECT 1"}
    assert client.post("/api/logs/query", json=body).status_code == 403
    ok = client.post("/api/logs/query", json=body, headers={"X-CSRF-Token": client.csrf})
    assert ok.status_code == 200


def test_api_ranges_take_only_iso_date_times_with_an_offset(
    api: TestClient, stored, now: datetime
) -> None:
    # Found by schemathesis: pydantic read `to=-559` as a Unix timestamp (1969), and a bare
    # date or a time without its offset as something the schema's `date-time` does not allow.
    for value in ("-559", "1700000000", "2025-03-01", "2025-03-01T09:30:00", "yesterday"):
        for path in ("/api/logs/events", "/api/logs/histogram", "/api/logs/facets"):
            response = api.get(path, params={"to": value})
            assert response.status_code == 422, (path, value, response.text)
            assert "ISO 8601 date and time with its offset" in response.json()["detail"]
    week = {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}
    assert len(api.get("/api/logs/events", params=week).json()["events"]) == 50
    zulu = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.get("/api/logs/histogram", params={"to": zulu}).status_code == 200


def test_api_query_declares_its_csv_answer(api: TestClient) -> None:
    # Found by schemathesis: `format=csv` answered text/csv, which the schema did not list.
    declared = api.get("/api/openapi.json").json()["paths"]["/api/logs/query"]["post"]
    content = declared["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/QueryOut"}


def test_every_sql_entry_point_refuses_writes_ddl_and_file_reads(
    runtime: Runtime, client: TestClient, api: TestClient, stored
) -> None:
    # Each kind once here; tests/logs/test_search.py tries many spellings against the guard.
    sources.add_source(runtime.state, "acme", "https://acme.api.kandji.io", "t" * 36)
    key_file = runtime.settings.secret_key_file  # made by the first stored token
    key = key_file.read_bytes().strip()
    statements = [
        *(f"{verb} kandji_logs" for verb in ("DROP TABLE", "TRUNCATE TABLE", "OPTIMIZE TABLE")),
        "INSERT INTO kandji_logs (id) VALUES ('x')",
        "ALTER TABLE kandji_logs DELETE WHERE 1",
        "CREATE TABLE x (a Int8) ENGINE = Memory",
        "SYSTEM DROP MARK CACHE",
        "SELECT 1; DROP TABLE kandji_logs",
        "SELECT 1; SELECT 2",
        f"SELECT file('{key_file}')",
        f"SELECT base64Encode(file('{key_file}'))",
        f"SELECT * FROM file('{key_file}', 'LineAsString')",  # noqa: S608
    ]
    before = runtime.store.count()
    for sql in statements:
        answers = [
            client.get("/logs/sql", params={"q": sql}),
            client.get("/logs/sql.csv", params={"q": sql}),
            api.post("/api/logs/query", json={"sql": sql}),
            api.post("/api/logs/query", params={"format": "csv"}, json={"sql": sql}),
        ]
        for answer in answers:
            assert answer.status_code == 400, (sql, answer.request.url.path, answer.text[:200])
            assert key not in answer.content
    assert runtime.store.count() == before
    assert runtime.store.query("SHOW TABLES").rows == [["kandji_logs"], ["kandji_logs_quarantine"]]
