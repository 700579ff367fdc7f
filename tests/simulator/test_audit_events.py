"""GET /api/v1/audit/events: keyset paging in every order never skips or repeats an event, with
date filters in both documented formats, DRF-style cursors and links, and clear query errors."""

import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from kandji_bridge.simulator import ulid
from kandji_bridge.simulator.server import RunningSimulator

from .helpers import all_event_pages, all_events, client


def occurred(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


@pytest.mark.parametrize(
    ("sort_by", "key", "reverse"),
    [
        ("occurred_at", lambda e: (e["occurred_at"], e["id"]), False),
        ("-occurred_at", lambda e: (e["occurred_at"], e["id"]), True),
        ("id", lambda e: e["id"], False),
        ("-id", lambda e: e["id"], True),
    ],
)
def test_paging_returns_every_event_once_in_order(
    simulator: RunningSimulator, sort_by: str, key: Callable, reverse: bool
) -> None:
    expected = sorted(simulator.events(), key=key, reverse=reverse)
    with client(simulator) as http:
        events = all_events(http, {"limit": "100", "sort_by": sort_by})
    assert [e["id"] for e in events] == [e["id"] for e in expected]
    assert len(expected) == 1200


def test_no_sort_by_means_ascending_occurred_at(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        events = all_events(http, {"limit": "500"})
    assert [e["id"] for e in events] == [e["id"] for e in simulator.events()]


def test_events_with_equal_timestamps_are_neither_skipped_nor_repeated(
    simulator: RunningSimulator,
) -> None:
    moment = datetime(2020, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)  # before all the history
    added = {simulator.state.add_event(occurred_at=moment)["id"] for _ in range(7)}
    with client(simulator) as http:
        for sort_by in ("occurred_at", "-occurred_at"):
            events = all_events(http, {"limit": "3", "sort_by": sort_by, "end_date": "2020-01-01"})
            assert [e["id"] for e in events] == sorted(added, reverse=sort_by.startswith("-"))


@pytest.mark.parametrize("sort_by", ["occurred_at", "-occurred_at", "id", "-id"])
def test_date_filters_in_datetime_format(simulator: RunningSimulator, sort_by: str) -> None:
    history = simulator.events()
    start, end = history[200]["occurred_at"], history[700]["occurred_at"]
    with client(simulator) as http:
        events = all_events(
            http, {"limit": "100", "sort_by": sort_by, "start_date": start, "end_date": end}
        )
    assert {e["id"] for e in events} == {e["id"] for e in history[200:701]}


def test_date_filters_in_date_format_cover_whole_days(simulator: RunningSimulator) -> None:
    history = simulator.events()
    first_day = occurred(history[300]).date()
    last_day = first_day + timedelta(days=3)
    expected = [e["id"] for e in history if first_day <= occurred(e).date() <= last_day]
    with client(simulator) as http:
        events = all_events(
            http,
            {"limit": "100", "start_date": first_day.isoformat(), "end_date": last_day.isoformat()},
        )
    assert [e["id"] for e in events] == expected
    assert expected


def test_next_links_carry_the_query_and_a_kandji_like_cursor(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        body = http.get(
            "/api/v1/audit/events",
            params={"limit": "5", "sort_by": "-occurred_at", "start_date": "2000-01-01"},
        ).json()
    assert body["previous"] is None
    link = urlsplit(body["next"])
    assert f"{link.scheme}://{link.netloc}" == simulator.base_url
    assert link.path == "/api/v1/audit/events"
    query = parse_qs(link.query)
    assert (query["limit"], query["sort_by"], query["start_date"]) == (
        ["5"],
        ["-occurred_at"],
        ["2000-01-01"],
    )
    position = base64.b64decode(query["cursor"][0]).decode()
    last = body["results"][-1]
    moment = occurred(last).isoformat(sep=" ")  # "2025-03-17 22:29:25.301092+00:00"
    assert position == f">dt:{moment},id:{last['id']}"


def test_previous_links_lead_back_to_the_page_before(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        pages = all_event_pages(http, {"limit": "200", "sort_by": "-occurred_at"})
        back = http.get(pages[3]["previous"]).json()
    assert [p["previous"] is None for p in pages[:2]] == [True, False]
    assert back["results"] == pages[2]["results"]
    assert back["next"] is not None and back["previous"] is not None


def test_limit_is_capped_at_500_and_defaults_to_it(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        assert len(http.get("/api/v1/audit/events?limit=1000").json()["results"]) == 500
        assert len(http.get("/api/v1/audit/events").json()["results"]) == 500


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ("limit=many", 400, {"limit": ["A valid integer is required."]}),
        ("limit=0", 400, {"limit": ["Ensure this value is greater than or equal to 1."]}),
        ("sort_by=newest", 400, {"sort_by": ['"newest" is not a valid choice.']}),
        ("cursor=bm9wZQ==", 404, {"detail": "Invalid cursor"}),
        ("cursor=%%%", 404, {"detail": "Invalid cursor"}),
    ],
)
def test_bad_queries_get_drf_style_errors(
    simulator: RunningSimulator, query: str, status: int, body: dict
) -> None:
    with client(simulator) as http:
        response = http.get(f"/api/v1/audit/events?{query}")
    assert (response.status_code, response.json()) == (status, body)


def test_a_bad_date_names_the_parameter(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        response = http.get("/api/v1/audit/events?end_date=yesterday")
    assert response.status_code == 400
    assert "wrong format" in response.json()["end_date"][0]


def test_ids_are_ulids_minted_just_after_the_event(simulator: RunningSimulator) -> None:
    for event in simulator.events():
        lag_ms = ulid.timestamp_ms(event["id"]) - occurred(event).timestamp() * 1000
        assert -1 < lag_ms <= 121, event


def test_paging_while_live_events_arrive_skips_and_repeats_nothing(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    live = simulator_factory(
        devices=30, events=600, history_days=5, events_per_minute=6000, rate_per_second=0
    )
    before = {e["id"] for e in live.events()}
    for sort_by in ("occurred_at", "-occurred_at"):
        seen: list[str] = []
        with client(live) as http:
            response = http.get("/api/v1/audit/events", params={"limit": "50", "sort_by": sort_by})
            while True:
                body = response.json()
                seen.extend(e["id"] for e in body["results"])
                if body["next"] is None:
                    break
                time.sleep(0.02)  # events keep arriving between pages
                response = http.get(body["next"])
        assert len(seen) == len(set(seen)), "no event twice"
        assert before <= set(seen), "every event that existed when paging began"
        if sort_by == "occurred_at":  # paging forward reaches the events that arrived meanwhile
            assert len(seen) > len(before)
