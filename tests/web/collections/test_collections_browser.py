"""Collections in a real browser: create one through the form (an error first, what was typed
kept), see it listed; import the simulator's devices into it, then search, sort, page, and open
a record with its values, its change history and the audit events that targeted its device."""

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import parse_field_spec
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, parse_pair
from kandji_bridge.inventory.sync import sync_mapping
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.logs.collector import CollectorSource, collect
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

DASH = "\N{EN DASH}"  # between the first and last row shown: "1-10 of 40 records"


def in_thread(coroutine: Any) -> Any:
    """Run a coroutine to the end in a thread of its own (Playwright's sync API holds this one)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def import_devices(runtime: Runtime, simulator: RunningSimulator) -> None:
    sources.add_source(runtime.state, "sim", simulator.base_url, simulator.token)
    spec = MappingSpec(
        name="Kandji Device Import",
        source="sim",
        collection="ITAM",
        identifier=parse_pair("device_id=Device ID"),
        pairs=[parse_pair("serial_number=Serial"), parse_pair("device_name=Name")],
    )
    mappings.create_mapping(runtime.state, spec)
    report = in_thread(sync_mapping(runtime.state, "Kandji Device Import"))
    assert report.created == 40


def collect_events(runtime: Runtime, simulator: RunningSimulator) -> None:
    info = sources.get_source(runtime.state, "sim")

    async def run() -> None:
        async with KandjiClient(
            simulator.base_url, simulator.token, allowed_hosts=frozenset({simulator.host_port})
        ) as client:
            result = await collect(
                client,
                runtime.store,
                CollectorSource(info.id, info.name, info.retention_days),
                runtime.state.workspace_id,
            )
            assert result.error is None

    in_thread(run())


def test_create_a_collection_import_devices_and_browse_a_record(
    home: Path, allow_simulator: RunningSimulator, runtime: Runtime, page, screenshot
) -> None:
    # `home` first: it clears the KANDJI_BRIDGE_* environment that allow_simulator then sets.
    simulator = allow_simulator
    page.goto("/collections")
    expect(page.get_by_role("heading", name="No collections yet")).to_be_visible()
    screenshot(page, "empty-list")

    # A new collection; the second label repeats the first, so the form comes back with an error.
    page.get_by_role("link", name="New collection").click()
    page.fill("#f-name", "ITAM")
    page.fill("#label-0", "Device ID")
    page.check("input[name=unique][value='0']")
    page.fill("#label-1", "device id")
    page.fill("#label-2", "Name")
    page.get_by_role("button", name="Create collection").click()
    expect(page.locator("#e-label-1")).to_contain_text("already used by field 1")
    expect(page.locator("#f-name")).to_have_value("ITAM")
    expect(page.locator("#label-1")).to_have_value("device id")
    expect(page.locator("input[name=unique][value='0']")).to_be_checked()
    screenshot(page, "form-error-values-kept")

    page.fill("#label-1", "Serial")
    page.check("input[name=unique][value='1']")
    page.get_by_role("button", name="Add field").click()
    expect(page.locator("#label-3")).to_be_visible()
    page.fill("#label-3", "Disk GB")
    page.select_option("#type-3", "number")
    screenshot(page, "form-filled")
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("status")).to_contain_text("Created collection ITAM.")
    row = page.locator("tr[data-collection='ITAM']")
    expect(row).to_contain_text("Device ID")
    expect(row).to_contain_text("Disk GB")
    screenshot(page, "collection-listed")

    # Devices imported; one renamed in Kandji and synced again, so its record has history;
    # its audit events (the rename, and one more) collected into the log store.
    import_devices(runtime, simulator)
    device = simulator.devices[0]
    old_name = device.device_name
    renamed = simulator.state.rename_device(device.device_id, "Zed renamed Mac")
    added = simulator.state.add_event(
        action="update", target_type="device", target_id=device.device_id,
        target_component="blueprint",
    )  # fmt: skip
    report = in_thread(sync_mapping(runtime.state, "Kandji Device Import"))
    assert report.updated == 1
    collect_events(runtime, simulator)

    page.goto("/collections")
    expect(page.locator("tr[data-collection='ITAM']")).to_contain_text("40")
    expect(page.locator("tr[data-collection='ITAM']")).to_contain_text("Kandji Device Import")
    page.get_by_role("link", name="ITAM").click()
    expect(page.locator("#record-count")).to_contain_text(f"1{DASH}40 of 40 records")
    screenshot(page, "records-table")

    # The export buttons work with the default filter.
    for button, first in (("CSV", b"\xef\xbb\xbfDevice ID,"), ("JSON", b"[")):
        with page.expect_download() as download:
            page.get_by_role("link", name=button, exact=True).click()
        assert Path(download.value.path()).read_bytes().startswith(first)

    # Search.
    page.fill("#search", "zed renamed")
    expect(page.locator("#record-count")).to_contain_text(f"1{DASH}1 of 1 records")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("Zed renamed Mac")
    expect(page).to_have_url(re.compile(r"search=zed\+renamed"))
    screenshot(page, "search")

    # Sort by a column: names ascending, ignoring case.
    page.fill("#search", "")
    expect(page.locator("#record-count")).to_contain_text("of 40 records")
    page.locator("thead").get_by_role("link", name="Name").click()
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Name")
    names = sorted((d.device_name for d in simulator.devices), key=str.lower)
    expect(page.locator("tbody tr").first).to_contain_text(names[0])
    expect(page).to_have_url(re.compile(r"sort=Name"))
    screenshot(page, "sorted-by-name")

    # Ten a page, then page 2; the sort is kept.
    page.select_option("#size", "10")
    expect(page.locator("#page-info")).to_have_text("Page 1 of 4")
    page.get_by_role("link", name="Next →").click()
    expect(page.locator("#page-info")).to_have_text("Page 2 of 4")
    expect(page.locator("#record-count")).to_contain_text(f"11{DASH}20 of 40 records")
    expect(page.locator("tbody tr").first).to_contain_text(names[10])
    expect(page).to_have_url(re.compile(r"page=2"))
    screenshot(page, "page-2")

    # The renamed device's record: its values, its history, its audit events.
    page.goto("/collections/ITAM?search=zed+renamed")
    page.locator("tbody tr").first.get_by_role("link").click()
    # Titled by the device's name, its identifier below.
    expect(page.get_by_role("heading", level=1)).to_contain_text("Zed renamed Mac")
    expect(page.get_by_test_id("record-subtitle")).to_have_text(f"Device ID: {device.device_id}")
    values = page.locator("table.record-values")
    expect(values).to_contain_text("Zed renamed Mac")
    expect(values).to_contain_text(device.serial_number)
    history = page.locator("#history tbody tr")
    expect(history).to_have_count(1)
    expect(history).to_contain_text("Name")
    expect(history.locator("td.old")).to_have_text(old_name)
    expect(history.locator("td.new")).to_have_text("Zed renamed Mac")
    expect(history).to_contain_text("Kandji Device Import")
    events = page.locator("#timeline li")
    targeted = [e for e in simulator.state.all_events() if e["target_id"] == device.device_id]
    expect(events).to_have_count(len(targeted))
    # Newest first: the event added last, then the rename.
    expect(events.nth(0)).to_have_attribute("data-kandji-event", added["id"])
    expect(events.nth(1)).to_have_attribute("data-kandji-event", renamed["id"])
    expect(events.first.get_by_role("link")).to_have_attribute(
        "href", re.compile(r"^/logs/events/.+")
    )
    screenshot(page, "record")


def test_edit_and_delete_a_collection_and_refuse_what_would_break_its_mapping(
    home: Path, allow_simulator: RunningSimulator, runtime: Runtime, page, screenshot
) -> None:
    collections.create_collection(
        runtime.state,
        "ITAM",
        [parse_field_spec(spec) for spec in ("Device ID:text:unique", "Serial:text", "Name:text")],
    )
    import_devices(runtime, allow_simulator)
    page.goto("/collections/ITAM")
    page.click("#edit-collection")
    fields = page.locator("[data-testid=collection-fields] tbody tr")
    expect(fields).to_have_count(3)

    # A field the mapping fills, then its identifier's uniqueness: refused, naming the mapping.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button[aria-label='Remove Serial']")
    expect(page.get_by_test_id("edit-error")).to_contain_text(
        "Mapping 'Kandji Device Import' fills the field 'Serial'"
    )
    expect(fields).to_have_count(3)
    page.click("button[aria-label='Let values of Device ID repeat']")
    expect(page.get_by_test_id("edit-error")).to_contain_text(
        "is the Unique Identifier of mapping 'Kandji Device Import'"
    )
    expect(fields.first).to_contain_text("unique")
    screenshot(page, "edit-refused")

    # Delete is refused while the mapping feeds it: the page says what goes and what to do.
    page.get_by_role("link", name="Delete collection…").click()
    summary = page.get_by_test_id("delete-summary")
    expect(summary).to_contain_text("deletes its 40 records and their change history")
    expect(summary).to_contain_text("fed by mapping Kandji Device Import")
    expect(summary.get_by_role("button")).to_have_count(0)
    screenshot(page, "delete-refused")

    # Rename and add a field.
    page.goto("/collections/ITAM/edit")
    page.fill("#f-new_name", "Fleet")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_test_id("done")).to_contain_text("Collection saved.")
    expect(page).to_have_url(re.compile(r"/collections/Fleet/edit"))
    page.fill("#f-label", "Room")
    page.get_by_role("button", name="Add field").click()
    expect(fields).to_have_count(4)
    expect(fields.nth(3)).to_contain_text("Room")

    # Without the mapping, the collection and its records can be deleted.
    mappings.remove_mapping(runtime.state, "Kandji Device Import")
    page.goto("/collections/Fleet/delete")
    page.get_by_role("button", name="Delete Fleet and 40 records").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted collection Fleet")
    assert collections.list_collections(runtime.state) == []
    screenshot(page, "deleted")
