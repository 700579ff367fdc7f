"""The Sources flow in Chromium against the simulator, as RunReveal's Step 2 walks it."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

NO_AUDIT_TOKEN = "browser-token-without-audit-permission"


@pytest.fixture
def kandji(home: Path, allow_simulator: RunningSimulator) -> RunningSimulator:
    """The simulator, allowed as a Kandji URL (`home` first: it clears KANDJI_BRIDGE_*, and the
    runtime reads the allowed hosts after both)."""
    return allow_simulator


def no_token_in(tab, token: str) -> None:
    assert token not in tab.content()


def start_connect(tab, shot: Callable, name: str) -> None:
    """Sources → Add Source → the Kandji tile → a name → Connect Source."""
    tab.goto("/sources")
    assert tab.get_by_role("heading", name="No sources yet").is_visible()
    shot(tab, "sources-empty")
    tab.get_by_role("link", name="Add Source").click()
    tab.wait_for_url(re.compile(r".*/sources/new$"))
    tile = tab.get_by_test_id("kandji-tile")
    assert "Collect audit logs from your Kandji account" in tile.inner_text()
    shot(tab, "source-types")
    tile.click()
    tab.wait_for_url(re.compile(r".*/sources/new/kandji$"))
    tab.fill("#f-name", name)
    shot(tab, "name")
    tab.get_by_role("button", name="Connect Source").click()
    tab.wait_for_url(re.compile(r".*/sources/new/kandji/connect.*"))
    assert tab.input_value("#f-name") == name
    assert tab.get_attribute("#f-token", "type") == "password"


def test_add_a_kandji_source(
    kandji: RunningSimulator, runtime: Runtime, page, screenshot: Callable
) -> None:
    start_connect(page, screenshot, "kandji-prod")
    page.fill("#f-api_url", kandji.base_url)
    page.fill("#f-token", kandji.token)
    screenshot(page, "url-and-token")

    page.get_by_role("button", name="Verify").click()
    checklist = page.get_by_test_id("checklist")
    checklist.wait_for()
    names = [item.get_attribute("data-check") for item in checklist.locator("li").all()]
    assert names == [
        "URL",
        "token",
        "List audit events",
        "Device list",
        "Device details",
        "List admins",
    ]
    assert checklist.locator("li.check-ok").count() == 6
    assert page.get_by_text("All checks passed. Click Save to add the source.").is_visible()
    # htmx swapped the checklist in place: what was typed is still there, the token included.
    assert page.input_value("#f-api_url") == kandji.base_url
    assert page.input_value("#f-token") == kandji.token
    no_token_in(page, kandji.token)
    screenshot(page, "verified")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r".*/sources\?added=kandji-prod$"))
    assert page.get_by_text("Source kandji-prod was added").is_visible()
    row = page.locator("tr[data-source='kandji-prod']")
    assert row.is_visible()
    assert row.get_by_test_id("status").inner_text() == "never polled"
    no_token_in(page, kandji.token)
    screenshot(page, "sources-list")

    row.get_by_role("link", name="kandji-prod").click()
    page.get_by_role("button", name="Poll now").click()
    page.wait_for_url(re.compile(r".*/sources/kandji-prod\?polled=done$"))
    assert page.get_by_test_id("status").inner_text() == "ok"
    events = len(kandji.state.all_events())
    assert page.get_by_test_id("events").inner_text() == f"{events:,}"
    no_token_in(page, kandji.token)
    screenshot(page, "source-page-after-poll")


def test_a_token_without_the_audit_permission_is_explained_and_not_saved(
    kandji: RunningSimulator, runtime: Runtime, page, screenshot: Callable
) -> None:
    kandji.state.set_token(NO_AUDIT_TOKEN, {"devices", "details"})
    start_connect(page, screenshot, "kandji-prod")
    page.fill("#f-api_url", kandji.base_url)
    page.fill("#f-token", NO_AUDIT_TOKEN)

    page.get_by_role("button", name="Verify").click()
    page.get_by_test_id("checklist").wait_for()
    audit = page.locator("li[data-check='List audit events']")
    assert "check-fail" in (audit.get_attribute("class") or "")
    assert 'lacks the "List audit events" permission (403)' in audit.inner_text()
    explanation = page.get_by_test_id("audit-explanation").inner_text()
    assert "Kandji tokens have no permissions by default." in explanation
    assert "You must explicitly grant List audit events" in explanation
    assert "Settings → Access" in explanation
    no_token_in(page, NO_AUDIT_TOKEN)
    screenshot(page, "verify-shows-missing-permission")

    page.get_by_role("button", name="Save").click()
    page.wait_for_load_state()
    refused = page.get_by_role("alert").first.inner_text()
    assert refused.startswith("Source kandji-prod was not saved: The API token for")
    assert 'lacks the "List audit events" permission (403)' in refused
    explanation = page.get_by_test_id("audit-explanation").inner_text()
    assert "Kandji tokens have no permissions by default." in explanation
    assert page.input_value("#f-name") == "kandji-prod"
    assert page.input_value("#f-api_url") == kandji.base_url
    assert page.input_value("#f-token") == ""
    assert page.get_by_text("Paste the API token again: it is never shown back.").is_visible()
    no_token_in(page, NO_AUDIT_TOKEN)
    screenshot(page, "save-refused")
    assert sources.list_sources(runtime.state) == []


def test_a_source_saved_without_its_permissions_is_checked_from_its_page(
    kandji: RunningSimulator, runtime: Runtime, page, screenshot: Callable
) -> None:
    """A source whose token's permissions were never recorded (registered by a script, or by an
    older version): its page says how to check them in the UI, and Check token shows them."""
    sources.add_source(runtime.state, "kandji-prod", kandji.base_url, kandji.token)
    page.goto("/sources/kandji-prod")
    shown = page.get_by_test_id("permissions")
    assert shown.inner_text() == "not checked yet: use Check token"
    page.get_by_role("button", name="Check token").click()
    page.wait_for_load_state()
    screenshot(page, "checked")
    assert page.get_by_role("status").inner_text() == "Checked the token with Kandji just now."
    allowed = page.get_by_test_id("permissions").inner_text()
    assert "List audit events" in allowed and "Device list" in allowed, allowed
    assert sources.get_source(runtime.state, "kandji-prod").permissions is not None
    no_token_in(page, kandji.token)
