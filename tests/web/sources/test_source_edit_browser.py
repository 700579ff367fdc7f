"""Editing a source in Chromium: a token Kandji refuses changes nothing, a rotation is saved."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

LOGS_ONLY_TOKEN = "browser-token-for-audit-logs-only"


@pytest.fixture
def kandji(home: Path, allow_simulator: RunningSimulator) -> RunningSimulator:
    """The simulator, allowed as a Kandji URL (`home` first: it clears KANDJI_BRIDGE_*)."""
    return allow_simulator


def test_edit_a_source(
    kandji: RunningSimulator, runtime: Runtime, page, screenshot: Callable
) -> None:
    kandji.state.set_token(LOGS_ONLY_TOKEN, {"audit"})
    sources.add_source(runtime.state, "kandji-prod", kandji.base_url, kandji.token)
    page.goto("/sources/kandji-prod")
    page.get_by_role("link", name="Edit").click()
    page.wait_for_url(re.compile(r".*/sources/kandji-prod/edit$"))
    assert page.get_attribute("#f-token", "type") == "password"

    page.fill("#f-token", "a-token-kandji-never-issued")
    page.fill("#f-poll_interval", "300")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#e-token")
    error.wait_for()
    assert error.inner_text().startswith("Nothing was changed: The new token was not saved")
    assert "a-token-kandji-never-issued" not in page.content()
    screenshot(page, "refused-token")
    assert sources.get_source(runtime.state, "kandji-prod").poll_interval_seconds == 60

    page.fill("#f-token", LOGS_ONLY_TOKEN)
    page.fill("#f-display_name", "Kandji (production)")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved (token, poll interval, display name).").wait_for()
    assert page.get_by_test_id("permissions").inner_text().startswith("List audit events")
    assert LOGS_ONLY_TOKEN not in page.content()
    screenshot(page, "saved")
    assert sources.get_source_token(runtime.state, "kandji-prod") == LOGS_ONLY_TOKEN
