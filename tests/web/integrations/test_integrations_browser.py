"""Asset Panda's "Set up the Kandji integration" in Chromium on a simulated tenant, step by step.

Integrations → Integrations Store → Kandji tile → Add → Configure → Base URL + API Key → Test and
save connection → success message and green check → Continue with mapping → Mapping List → new
mapping → Save → the mapping page with its first sync.
"""

import asyncio
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections, records
from kandji_bridge.assets.collections import FieldSpec
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, parse_pair
from kandji_bridge.inventory.sync import sync_mapping
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.simulator.server import RunningSimulator

from .test_integrations_api import source_rows


def make_itam(runtime: Runtime) -> None:
    collections.create_collection(
        runtime.state,
        "ITAM",
        [
            FieldSpec("Serial", FieldType.TEXT, unique=True),
            FieldSpec("Name", FieldType.TEXT),
            FieldSpec("Model", FieldType.TEXT),
        ],
    )


def open_configure(page, screenshot) -> None:
    """Integrations → Integrations Store → the Kandji tile → Add → Configure."""
    page.get_by_role("link", name="Integrations", exact=True).click()
    page.wait_for_url(re.compile(r".*/integrations$"))
    assert page.locator("nav.itabs >> text=Integrations Store").is_visible()
    tile = page.locator("[data-testid=tile-kandji]")
    assert "Kandji" in tile.inner_text()
    screenshot(page, "integrations-store")
    tile.get_by_role("link", name="Add", exact=True).click()
    page.wait_for_url(re.compile(r".*tab=module"))
    assert page.locator(".itabs .tab.active").inner_text() == "Integrations in this module"
    assert "Not connected yet" in page.locator("[data-testid=tile-kandji]").inner_text()
    screenshot(page, "integrations-in-this-module")
    page.locator("[data-testid=tile-kandji]").get_by_role("link", name="Configure").click()
    page.wait_for_url(re.compile(r".*/integrations/kandji$"))
    assert page.locator("label[for=f-base_url]").inner_text() == "Base URL"
    assert "Web address of the system to which you are connecting" in page.inner_text("main")
    assert page.get_attribute("#f-api_key", "type") == "password"
    assert page.locator("[data-testid=auth-check]").count() == 0
    screenshot(page, "configure")


def test_the_seed_flow_from_integrations_store_to_the_first_sync(
    home, allow_simulator: RunningSimulator, runtime: Runtime, page, screenshot
) -> None:
    make_itam(runtime)
    devices = len(allow_simulator.devices)
    open_configure(page, screenshot)

    page.fill("#f-base_url", allow_simulator.base_url)
    page.fill("#f-api_key", allow_simulator.token)
    page.get_by_role("button", name="Test and save connection").click()
    saved = page.locator("[data-testid=connection-saved]")
    saved.wait_for()
    assert "Connection saved" in saved.inner_text()
    check = page.locator("[data-testid=auth-check]")
    assert check.is_visible()
    # The check sits above the Authentication tab's label.
    label = page.locator(".config-tabs .tab-label", has_text="Authentication")
    assert check.bounding_box()["y"] + check.bounding_box()["height"] <= label.bounding_box()["y"]
    assert page.input_value("#f-api_key") == ""
    assert allow_simulator.token not in page.content()
    screenshot(page, "connection-saved")

    page.get_by_role("link", name="Continue with mapping").click()
    page.wait_for_url(re.compile(r".*/integrations/mappings$"))
    assert page.locator("h2", has_text="Mapping List").is_visible()
    assert "No mappings yet" in page.inner_text("[data-testid=mapping-list]")
    screenshot(page, "mapping-list-empty")

    page.get_by_role("link", name="Add mapping").first.click()
    page.wait_for_url(re.compile(r".*/integrations/mapping-form.*"))
    page.fill("#f-name", "Kandji Device Import")
    assert page.locator("#f-entity option:checked").inner_text() == "Devices"
    page.select_option("#f-collection", "ITAM")
    page.wait_for_load_state("networkidle")
    # Only unique fields are offered for the Unique Identifier.
    offered = page.locator("#f-identifier_field option").all_inner_texts()
    assert offered == ["Choose a unique field", "Serial (text)"]
    assert "Only fields marked as unique" in page.inner_text("#mapping-section")
    page.select_option("#f-identifier_kandji", "serial_number")
    hint = page.locator("#h-identifier")
    hint.filter(has_text="Common and acceptable identifier").wait_for()
    option = page.locator("#f-identifier_kandji option:checked").inner_text()
    assert option == "Serial Number — Common and acceptable identifier"
    page.select_option("#f-identifier_field", "Serial")
    screenshot(page, "new-mapping-identifier")

    rows = page.locator("[data-testid=field-row]")
    before = rows.count()
    page.get_by_role("button", name="Add more").click()
    rows.nth(before).wait_for()
    # htmx binds the new row's hx-get once the swap settles; a change before that is lost.
    page.wait_for_function("() => !document.querySelector('.htmx-added, .htmx-settling')")
    new_row = rows.nth(before)
    new_row.locator("select[name=kandji]").select_option("device_name")
    new_row.locator(".hint").filter(has_text="Use only if standardized").wait_for()
    new_row.locator("select[name=field]").select_option("Name")
    screenshot(page, "new-mapping-add-more")

    page.click("button:text-is('Save')")
    page.wait_for_url(re.compile(r".*/integrations/mappings/Kandji%20Device%20Import.*"))
    done = page.locator("[data-testid=done]")
    assert "Mapping saved and active" in done.inner_text()
    assert f"created {devices}" in done.inner_text()
    history = page.locator("[data-testid=sync-history] tbody tr")
    assert history.count() == 1
    assert history.first.locator("[data-count=created]").inner_text() == str(devices)
    assert "succeeded" in history.first.inner_text()
    mapped = page.inner_text("[data-testid=mapped-fields]")
    assert "Serial Number" in mapped and "Device Name" in mapped and "Unique Identifier" in mapped
    screenshot(page, "mapping-page-first-sync")

    collection = collections.get_collection(runtime.state, "ITAM")
    imported = {
        values[collection.field("Serial").id]: values[collection.field("Name").id]
        for _, values in records.iter_records(runtime.state, collection, (records.ACTIVE,))
    }
    assert len(imported) == devices
    some = allow_simulator.devices[0]
    assert imported[some.serial_number] == some.device_name

    # The dry-run preview: nothing left to do.
    page.click("button:text-is('Preview')")
    page.locator("[data-testid=preview]", has_text="Dry run").wait_for()
    assert f"{devices} devices listed" in page.inner_text("[data-testid=preview]")
    assert "Every record is up to date" in page.inner_text("[data-testid=preview]")
    screenshot(page, "mapping-page-preview")

    page.click("button:text-is('Sync now')")
    page.wait_for_url(re.compile(r".*done=synced"))
    assert page.locator("[data-testid=sync-history] tbody tr").count() == 2
    assert f"unchanged {devices}" in page.inner_text("[data-testid=done]")
    screenshot(page, "mapping-page-sync-now")

    page.get_by_role("link", name="Mapping List").click()
    assert "Kandji Device Import" in page.inner_text("[data-testid=mapping-list]")
    screenshot(page, "mapping-list")
    assert [s.mapping.name for s in mappings.list_mappings(runtime.state)] == [
        "Kandji Device Import"
    ]


def test_a_wrong_api_key_shows_the_error_and_saves_nothing(
    home, allow_simulator: RunningSimulator, runtime: Runtime, page, screenshot
) -> None:
    open_configure(page, screenshot)
    page.fill("#f-base_url", allow_simulator.base_url)
    page.fill("#f-api_key", "00000000-0000-4000-8000-000000000000")
    page.get_by_role("button", name="Test and save connection").click()
    failed = page.locator("[data-testid=connection-failed]")
    failed.wait_for()
    assert "The connection was not saved" in failed.inner_text()
    failed_check = page.locator("[data-testid=checks] li.check-fail").inner_text()
    assert failed_check.startswith("API Key: ") and "refused the API token" in failed_check
    assert "refused the API token" in page.inner_text("#e-api_key")
    assert page.input_value("#f-base_url") == allow_simulator.base_url
    assert page.input_value("#f-api_key") == ""
    assert page.locator("[data-testid=auth-check]").count() == 0
    assert page.get_by_role("link", name="Continue with mapping").count() == 0
    screenshot(page, "wrong-key")
    assert source_rows(runtime) == []


def test_after_sync_now_in_the_background_the_page_shows_the_run_when_it_finishes(
    home, allow_simulator: RunningSimulator, runtime: Runtime, page, screenshot
) -> None:
    make_itam(runtime)
    sources.add_source(runtime.state, "sim", allow_simulator.base_url, allow_simulator.token)
    mappings.create_mapping(
        runtime.state,
        MappingSpec("Kandji Device Import", "sim", "ITAM", parse_pair("serial_number=Serial")),
    )
    with ThreadPoolExecutor(1) as pool:  # synced once: not due again for an hour
        pool.submit(asyncio.run, sync_mapping(runtime.state, "Kandji Device Import")).result()
    scheduler = Scheduler(runtime, tick_seconds=0.2)
    runtime.jobs = scheduler
    thread = threading.Thread(target=asyncio.run, args=(scheduler.run(),), daemon=True)
    thread.start()
    try:
        page.goto("/integrations/mappings/Kandji%20Device%20Import")
        assert page.locator("[data-testid=sync-history] tbody tr").count() == 1
        page.click("button:text-is('Sync now')")
        page.wait_for_url(re.compile(r".*done=triggered"))
        screenshot(page, "sync-running")
        # No reload: the page polls its status and shows the run once it has finished.
        page.wait_for_url(re.compile(r".*done=synced"), timeout=60_000)
        assert page.locator("[data-testid=sync-history] tbody tr").count() == 2
        devices = len(allow_simulator.devices)
        assert f"unchanged {devices}" in page.inner_text("[data-testid=done]")
        assert page.locator("[data-testid=sync-status]").count() == 0
        screenshot(page, "sync-finished")
    finally:
        scheduler.stop()
        thread.join(timeout=30)


def test_the_mapping_page_edits_fields_identifier_schedule_and_refuses_a_breaking_edit(
    home, allow_simulator: RunningSimulator, runtime: Runtime, page, screenshot
) -> None:
    make_itam(runtime)
    sources.add_source(runtime.state, "sim", allow_simulator.base_url, allow_simulator.token)
    spec = MappingSpec(
        "Kandji Device Import",
        "sim",
        "ITAM",
        parse_pair("serial_number=Serial"),
        [parse_pair("device_name=Name")],
    )
    mappings.create_mapping(runtime.state, spec)
    page.goto("/integrations/mappings/Kandji%20Device%20Import")
    fields = page.locator("[data-testid=mapped-fields] tbody tr")
    assert fields.count() == 2

    # A unique identifier into a field that is not unique: said on the page, nothing changed.
    page.select_option("#e-identifier_kandji", "device_name")
    page.select_option("#e-identifier_field", "Name")
    page.click("button:text-is('Change identifier')")
    assert "'Name' of collection ITAM is not" in page.inner_text("[data-testid=edit-error]")
    assert fields.count() == 2
    assert (
        "Unique Identifier" in fields.first.inner_text() and "Serial" in fields.first.inner_text()
    )
    screenshot(page, "edit-refused")

    # Add a row, remove one, disable, change the schedule.
    page.select_option("#e-kandji", "model")
    page.select_option("#e-field", "Model")
    page.click("button:text-is('Add field')")
    page.wait_for_url(re.compile(r".*done=updated"))
    assert fields.count() == 3 and "Model" in fields.nth(2).inner_text()
    page.click("button[aria-label='Remove Name']")
    page.wait_for_url(re.compile(r".*done=updated"))
    assert fields.count() == 2 and "Name" not in page.inner_text("[data-testid=mapped-fields]")
    page.click("button:text-is('Disable')")
    page.wait_for_url(re.compile(r".*done=updated"))
    assert "disabled" in page.inner_text("[data-testid=schedule]")
    page.fill("#e-schedule_minutes", "15")
    page.click("button:text-is('Save schedule')")
    page.wait_for_url(re.compile(r".*done=updated"))
    assert "every 15 minutes" in page.inner_text("[data-testid=schedule]")
    screenshot(page, "edited")
    mapping = mappings.get_mapping(runtime.state, "Kandji Device Import")
    assert [m.field.label for m in mapping.fields] == ["Serial", "Model"]
    assert not mapping.enabled and mapping.schedule_minutes == 15
