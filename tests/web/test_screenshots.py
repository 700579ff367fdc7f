"""A screenshot of every page, at desktop (1280 px) and phone (390 px) width, with data: the
simulator's events collected and its devices imported. Written to $KANDJI_BRIDGE_ARTIFACTS (or
artifacts/screenshots/ in the repo, not committed) so a reviewer sees the whole UI at once. Each
page must render: status 200, the layout's top bar, and no sideways scroll at phone width."""

import asyncio
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kandji_bridge import source_registry as sources
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, parse_pair
from kandji_bridge.inventory.sync import sync_mapping
from kandji_bridge.operations.collections import create_collection, field_spec
from kandji_bridge.operations.polling import sync_source
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

from .conftest import ADMIN, PASSWORD

REPO = Path(__file__).resolve().parents[2]
WIDTHS = {"desktop": 1280, "phone": 390}
MAPPING = "Kandji Device Import"
TOP_EVENTS = "SELECT eventName, count() FROM kandji_logs GROUP BY 1"


def artifacts() -> Path:
    base = os.environ.get("KANDJI_BRIDGE_ARTIFACTS")
    folder = Path(base) / "screenshots" if base else REPO / "artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def in_thread(call: Any) -> Any:
    """Run `call` in a thread of its own: Playwright's sync API holds this thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def fill_with_data(runtime: Runtime, simulator: RunningSimulator) -> None:
    """A source with its events collected, a collection and a mapping with its devices imported."""
    sources.add_source(runtime.state, "sim", simulator.base_url, simulator.token)
    sync_source(runtime.settings, runtime.state, runtime.store, runtime.enricher, "sim")
    create_collection(
        runtime.state,
        "ITAM",
        [
            field_spec("Device ID", "text", True),
            field_spec("Serial", "text"),
            field_spec("Name", "text"),
        ],
    )
    spec = MappingSpec(
        name=MAPPING,
        source="sim",
        collection="ITAM",
        identifier=parse_pair("device_id=Device ID"),
        pairs=[parse_pair("serial_number=Serial"), parse_pair("device_name=Name")],
    )
    mappings.create_mapping(runtime.state, spec)
    asyncio.run(sync_mapping(runtime.state, MAPPING))


def test_every_page_renders_at_desktop_and_phone_width(
    home: Path, allow_simulator: RunningSimulator, runtime: Runtime, browser, live_server: str
) -> None:
    in_thread(lambda: fill_with_data(runtime, allow_simulator))
    folder = artifacts()
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.goto("/login")
    tab.fill("#f-username", ADMIN)
    tab.fill("#f-password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(re.compile(r".*/sources.*"))

    tab.goto("/logs")
    event = tab.locator('a[href^="/logs/events/"]').first.get_attribute("href")
    tab.goto("/collections/ITAM")
    record = tab.locator('a[href^="/collections/ITAM/records/"]').first.get_attribute("href")
    assert event and record, "the data did not reach the pages"
    pages = {
        "sources": "/sources",
        "source": "/sources/sim",
        "source-remove": "/sources/sim/remove",
        "source-new": "/sources/new",
        "source-new-kandji": "/sources/new/kandji",
        "logs": "/logs",
        "log-event": event,
        "sql": "/logs/sql?q=" + quote(TOP_EVENTS),
        "integrations": "/integrations",
        "integration-kandji": "/integrations/kandji",
        "mappings": "/integrations/mappings",
        "mapping-form": "/integrations/mapping-form",
        "mapping": "/integrations/mappings/" + quote(MAPPING),
        "collections": "/collections",
        "collection-new": "/collections/new",
        "collection": "/collections/ITAM",
        "record": record,
        "account": "/account",
        "about": "/about",
    }
    problems = []
    for device, width in WIDTHS.items():
        tab.set_viewport_size({"width": width, "height": 900})
        for number, (name, path) in enumerate(pages.items(), start=1):
            response = tab.goto(path)
            tab.wait_for_load_state("networkidle")
            tab.screenshot(path=str(folder / f"{device}-{number:02d}-{name}.png"), full_page=True)
            if response is None or response.status != 200:
                problems.append(f"{device} {path}: HTTP {response.status if response else '-'}")
                continue
            if not tab.locator("header.topbar").is_visible():
                problems.append(f"{device} {path}: no top bar")
            overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if overflow > 0:
                problems.append(f"{device} {path}: scrolls sideways by {overflow} px")
    context.close()
    assert not problems, "\n".join(problems)
    assert len(list(folder.glob("*.png"))) >= 2 * len(pages)
