"""The logs flow in Chromium: explorer, search, filter, one event, SQL, CSV, and a refused DROP.

The events come from one collector pass against the simulator, as `serve` would store them.
"""

import asyncio
import csv
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.ratelimit import RateLimiter
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.logs import search as logsearch
from kandji_bridge.logs.collector import CollectorSource, collect
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

SOURCE = CollectorSource(id="src-browser", name="acme", retention_days=365)


def collect_once(simulator: RunningSimulator, runtime: Runtime) -> int:
    async def go() -> int:
        client = KandjiClient(
            ApiUrl(simulator.base_url), simulator.token, limiter=RateLimiter(1000, 1_000_000)
        )
        async with client:
            result = await collect(
                client, runtime.store, SOURCE, "ws-browser", enricher=runtime.enricher
            )
        assert result.error is None, result.error
        return result.stored

    # Playwright's sync API holds an event loop in this thread: run the pass in another one.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, go()).result()


def row_count(page) -> int:
    return page.locator("table.events tbody tr.clickable").count()


def test_explore_search_filter_open_event_and_query_sql(
    allow_simulator: RunningSimulator,
    runtime: Runtime,
    page,
    screenshot: Callable[[object, str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stored = collect_once(allow_simulator, runtime)
    assert stored == 1200

    # The explorer: the last 24 hours, a histogram and a page of rows.
    page.goto("/logs")
    page.select_option("#f-range", "7d")
    page.wait_for_url(re.compile(r".*range=7d.*"))
    histogram = page.locator("section.histogram svg rect")
    assert histogram.count() >= 50
    total = int(page.locator("#total").inner_text().split()[0].replace(",", ""))
    assert 100 < total < 1200
    assert row_count(page) == 50
    assert page.get_by_role("link", name="Older →").is_visible()
    screenshot(page, "explorer")

    # Search: a term found in only some events narrows the rows, and the URL says so.
    first_target = page.locator("table.events tbody tr").first.locator("td").nth(3).inner_text()
    term = first_target.split()[0]
    page.fill("#f-q", term)
    page.wait_for_url(re.compile(r".*q=.*"))
    page.wait_for_function(
        "total => Number(document.querySelector('#total').innerText.split(' ')[0]"
        ".replace(/,/g, '')) < total",
        arg=total,
    )
    narrowed = int(page.locator("#total").inner_text().split()[0].replace(",", ""))
    assert 0 < narrowed < total
    assert term in page.locator("table.events tbody").inner_text()
    screenshot(page, "search-narrows")

    # A text over more events than the explorer matches at once: the newest bucket is counted,
    # the older ones shaded and said so, and one click counts the whole range.
    monkeypatch.setattr(logsearch, "TEXT_HISTOGRAM_ROWS", 1)
    page.fill("#f-q", term + " ")  # the same search, typed again
    page.wait_for_selector("#uncounted")
    assert page.locator("rect.uncounted").count() > 0
    assert "not searched yet" in page.locator("#uncounted").inner_text()
    screenshot(page, "text-histogram-newest")
    # The click takes the focus from the search box: that must not search again beside the
    # count (the search's answer, if last, would bring the shaded buckets back).
    searches: list[str] = []
    page.on("request", lambda request: searches.append(request.url))
    with page.expect_response(lambda response: "count=all" in response.url):
        page.get_by_role("link", name="Count the whole range").click()
    page.wait_for_url(re.compile(r".*count=all.*"))
    page.wait_for_selector("#uncounted", state="detached")
    page.wait_for_timeout(1000)
    assert [url for url in searches if "/logs?" in url and "count=all" not in url] == []
    assert page.locator("rect.uncounted").count() == 0
    assert int(page.locator("#total").inner_text().split()[0].replace(",", "")) == narrowed
    monkeypatch.undo()

    # A filter: the actorType select, filled from the facets.
    page.fill("#f-q", "")
    page.wait_for_url(re.compile(r".*q=(&|$).*"))
    options = page.locator("#f-actorType option").all_inner_texts()
    assert "user" in options
    page.select_option("#f-actorType", "user")
    page.wait_for_url(re.compile(r".*actorType=user.*"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('table.events tbody tr.clickable')].length > 0"
    )
    actors = page.locator("table.events tbody tr.clickable td:nth-child(3)").all_inner_texts()
    assert actors and all("api_token" not in actor and "system" not in actor for actor in actors)
    screenshot(page, "filter-actor-type")

    # The shareable link gives the same page on a full load.
    page.reload()
    assert page.locator("#f-actorType").input_value() == "user"
    assert row_count(page) > 0

    # One event: every column and the pretty-printed rawLog.
    event_name = page.locator("table.events tbody tr.clickable td").nth(1).inner_text()
    page.locator("table.events tbody tr.clickable").first.click()
    page.wait_for_url(re.compile(r".*/logs/events/.*"))
    assert page.locator("h1").inner_text() == event_name
    assert page.locator("table.columns > tbody > tr").count() == 46
    assert page.get_by_text("All 46 columns").is_visible()
    raw = page.locator("#raw-log").inner_text()
    assert raw.startswith("{\n  ") and '"occurred_at": ' in raw
    assert page.locator("table.columns th", has_text="srcASCountryCode").count() == 1
    screenshot(page, "event")

    # SQL: a query's result as a table, with the column types.
    page.click("nav >> text=SQL")
    page.wait_for_url(re.compile(r".*/logs/sql.*"))
    page.fill(
        "#f-q",
        "SELECT eventName, count() AS events FROM kandji_logs GROUP BY eventName "
        "ORDER BY events DESC",
    )
    page.get_by_role("button", name="Run").click()
    page.wait_for_selector("table.sql-result")
    headers = page.locator("table.sql-result th").all_inner_texts()
    assert [h.split("\n")[0] for h in headers] == ["eventName", "events"]
    assert "UInt64" in headers[1]
    counts = page.locator("table.sql-result tbody tr td:nth-child(2)").all_inner_texts()
    assert sum(int(n) for n in counts) == 1200
    screenshot(page, "sql-result")

    # The CSV download holds the whole result.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    path = tmp_path / "result.csv"
    download_info.value.save_as(path)
    with path.open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["eventName", "events"]
    assert sum(int(n) for _, n in rows[1:]) == 1200

    # A statement that writes is refused with one sentence; the table is still there.
    page.fill("#f-q", "DROP TABLE kandji_logs")
    page.get_by_role("button", name="Run").click()
    alert = page.locator("#sql-error")
    alert.wait_for()
    assert alert.inner_text().startswith("DROP statements cannot run here")
    assert page.locator("table.sql-result").count() == 0
    screenshot(page, "sql-refused")
    assert runtime.store.count() == 1200

    # An example query runs from its link.
    page.get_by_role("link", name="Countries of source IPs").click()
    page.wait_for_selector("table.sql-result")
    assert page.locator("table.sql-result th").first.inner_text().startswith("country")
    screenshot(page, "sql-example")
