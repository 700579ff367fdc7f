"""Logs an analyst can read, in Chromium: rows name their source and their actors, the Source
select and an actor's id link narrow them, and a secret's view says what was seen.

The events and admins come from one poll's work against the simulator, as `serve` stores them.
"""

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kandji_bridge import source_registry as sources
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.ratelimit import RateLimiter
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.logs import actors
from kandji_bridge.logs.collector import CollectorSource, collect
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

ROWS = "table.events tbody tr.clickable"


def poll_once(simulator: RunningSimulator, runtime: Runtime, source_id: str) -> None:
    async def go() -> None:
        client = KandjiClient(
            ApiUrl(simulator.base_url), simulator.token, limiter=RateLimiter(1000, 1_000_000)
        )
        async with client:
            source = CollectorSource(id=source_id, name="acme", retention_days=365)
            result = await collect(client, runtime.store, source, "ws-b", enricher=runtime.enricher)
            assert result.error is None, result.error
            read = await actors.refresh_admins(runtime.state, source_id, client)
            assert read.outcome == "read"

    # Playwright's sync API holds an event loop in this thread: run the pass in another one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, go()).result()


def cells(page, column: int) -> list[str]:
    return page.locator(f"{ROWS} td:nth-child({column})").all_inner_texts()


def test_sources_actors_and_views_read_as_an_analyst_reads_them(
    allow_simulator: RunningSimulator,
    runtime: Runtime,
    page,
    screenshot: Callable[[object, str], Path],
) -> None:
    acme = sources.add_source(runtime.state, "acme", allow_simulator.base_url, "t" * 36)
    poll_once(allow_simulator, runtime, acme.id)
    people = {admin.id: admin for admin in allow_simulator.tenant.admins}
    names = actors.resolve(runtime.state, people)

    # Rows name their source, and the Source select offers it by name.
    page.goto("/logs?range=7d")
    assert set(cells(page, 7)) == {"acme"}
    assert "acme" in page.locator("#f-sourceID option").all_inner_texts()
    page.select_option("#f-sourceID", label="acme")
    page.wait_for_url(re.compile(rf".*sourceID={acme.id}.*"))
    assert page.locator(ROWS).count() > 0

    # A person is shown by name and email, not by id; the id link narrows to that actor.
    page.select_option("#f-actorType", "user")
    page.wait_for_url(re.compile(r".*actorType=user.*"))
    page.wait_for_function(
        "() => [...document.querySelectorAll('table.events tbody tr.clickable')].length > 0"
    )
    first = page.locator(f"{ROWS} td.actor").first
    shown = first.inner_text()
    person = next(name for name in names.values() if name.display in shown)
    assert person.kind == actors.PERSON and person.email in shown
    assert not any(admin_id in text for text in cells(page, 3) for admin_id in people)
    screenshot(page, "actors-named")
    first.get_by_role("link", name="id").click()
    page.wait_for_url(re.compile(r".*actorId=.*"))
    assert {text.split(" ")[0] for text in cells(page, 3)} == {person.display.split(" ")[0]}

    # A look at a device secret says which secret it was, in the row and on the event page.
    page.goto("/logs?range=30d&action=view")
    viewed = page.locator(f"{ROWS} .viewed").all_inner_texts()
    assert viewed and {text.removeprefix("viewed: ") for text in viewed} <= {
        "FileVault recovery key",
        "Recovery Lock password",
        "Activation Lock bypass code",
    }
    screenshot(page, "views")
    page.locator(ROWS).first.locator("td").first.get_by_role("link").click()
    page.wait_for_url(re.compile(r".*/logs/events/.*"))
    assert page.locator("dd.viewed").inner_text() == viewed[0].removeprefix("viewed: ")
    assert page.locator("dl.who dd").first.inner_text() == "acme"
    screenshot(page, "view-event")
