"""The Detections, Alerts and Channels pages in Chromium, on a real chDB store and state DB, with
a real local webhook receiver."""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from detections.receivers import HttpReceiver, signature_ok
from kandji_bridge.detections.channels import add_webhook
from kandji_bridge.detections.fixtures import FixtureEvent
from kandji_bridge.detections.rules import previous_run
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.transform import transform
from kandji_bridge.operations import detections as ops
from kandji_bridge.service.runtime import Runtime

RULE = "kandji-device-deleted-or-mdm-removed"
SECRET = "a signing secret of the test"


def store_device_delete(runtime: Runtime, received: datetime) -> str:
    """A device deleted by an admin, received (stored) at `received`; returns its row id."""
    event = {
        "id": "01JNQA0000000000000000WEB1",
        "action": "delete",
        "occurred_at": received.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "actor_type": "user",
        "target_id": "0b0f3f1e-4c9c-4c53-9b54-6d4f1f3b2a10",
        "target_type": "device",
        "target_component": "",
        "new_state": {"device_name": "Jane's MacBook Pro", "serial_number": "C02XK1JHJG5J"},
        "metadata": {},
    }
    context = NormalizeContext("ws", "src-web", 0, received_at=received)
    enricher = build_enricher([], use_geoip2fast=False, env={})
    try:
        out = transform([FixtureEvent(timedelta(0), event, json.dumps(event))], context, enricher)
    finally:
        enricher.close()
    runtime.store.insert(out.rows)
    return str(out.rows[0]["id"])


def test_enable_a_rule_see_its_yaml_and_sql_and_run_it_over_a_period(
    runtime: Runtime, page, screenshot: Callable
) -> None:
    received = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    row_id = store_device_delete(runtime, received)

    page.goto("/detections")
    row = page.locator(f"tr[data-rule='{RULE}']")
    assert "High" in row.inner_text() or "Medium" in row.inner_text()
    row.get_by_role("button", name="Enable").click()
    page.wait_for_url(re.compile(r".*/detections\?changed="))
    assert page.get_by_text(f"{RULE} is enabled.").is_visible()
    switched = page.locator(f"tr[data-rule='{RULE}']")
    assert switched.get_by_role("button", name="Disable").is_visible()
    assert ops.enabled_rule_names(runtime.state) == [RULE]
    screenshot(page, "detections-enabled")

    page.locator(f"tr[data-rule='{RULE}']").get_by_role("link", name=RULE).click()
    assert f"name: {RULE}" in page.get_by_test_id("yaml").inner_text()
    assert "receivedAt >= {from:DateTime}" in page.get_by_test_id("sql").inner_text()
    page.fill("#f-start", (received - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-end", (received + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Run").click()
    assert page.get_by_test_id("match-count").inner_text() == "1 match."
    page.get_by_test_id("matches").get_by_role("link", name=row_id).click()
    page.wait_for_url(re.compile(r".*/logs/events/"))
    screenshot(page, "detection-run-event")

    # A period that ends before it starts is one sentence on the page.
    page.go_back()
    page.fill("#f-start", received.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#f-end", (received - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Run").click()
    assert page.get_by_role("alert").inner_text().startswith(f"Detection {RULE}: the window")


def test_an_alert_lists_filters_and_links_to_its_event(
    runtime: Runtime, page, screenshot: Callable
) -> None:
    now = datetime.now(UTC)
    boundary = previous_run("*/15 * * * *", now)
    store_device_delete(runtime, boundary - timedelta(minutes=5))
    add_webhook(runtime.state, "siem", "http://127.0.0.1:9/none", SECRET)
    ops.set_enabled(runtime.state, runtime.store, RULE, True, ("siem",))
    ran = ops.run_due_windows(runtime.settings, runtime.state, runtime.store, RULE, now)
    assert ran, "the last complete window ran"

    page.goto("/alerts")
    alerts = page.get_by_test_id("alerts")
    assert RULE in alerts.inner_html()
    screenshot(page, "alerts")
    page.select_option("#f-severity", "Low")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_role("heading", name="No alerts").is_visible()
    page.select_option("#f-severity", "")
    page.select_option("#f-detection", RULE)
    page.get_by_role("button", name="Filter").click()
    page.get_by_test_id("event-link").first.click()
    page.wait_for_url(re.compile(r".*/logs/events/"))
    assert "Jane's MacBook Pro" in page.content() or "C02XK1JHJG5J" in page.content()

    page.goto("/detections")
    assert page.locator(f"tr[data-rule='{RULE}']").get_by_test_id("alerts").inner_text() == "1"


def test_add_a_webhook_channel_and_send_it_a_test(runtime: Runtime, page) -> None:
    receiver = HttpReceiver().start()
    try:
        page.goto("/settings/channels")
        page.fill("#f-name", "siem")
        page.fill("#f-url", receiver.url)
        page.get_by_role("button", name="Add channel").click()
        secret = page.get_by_test_id("secret").locator("code").last.inner_text()
        assert len(secret) >= 16
        row = page.locator("tr[data-channel='siem']")
        assert "webhook" in row.inner_text()
        assert "/hooks/kandji" not in page.get_by_test_id("channels").inner_text()
        row.get_by_role("button", name="Send test").click()
        page.wait_for_url(re.compile(r".*/settings/channels\?tested=siem$"))
        assert page.get_by_text("Sent a test alert to siem.").is_visible()
        assert len(receiver.requests) == 1
        assert signature_ok(receiver.requests[0], secret)

        page.fill("#f-name", "bad")
        page.fill("#f-url", "ftp://example.com/x")
        page.get_by_role("button", name="Add channel").click()
        assert "must start with https://" in page.get_by_role("alert").inner_text()
    finally:
        receiver.stop()


def test_a_rule_page_runs_the_fixtures_that_ship_with_the_pack(runtime: Runtime, page) -> None:
    page.goto("/detections/kandji-delete-burst")
    page.get_by_role("button", name="Test its fixtures").click()
    summary = page.get_by_test_id("fixtures-summary").inner_text()
    assert re.fullmatch(r"All \d+ cases passed\.", summary), summary
    cases = page.get_by_test_id("fixture-cases").inner_text()
    assert "negative case" in cases and "FAIL" not in cases

    # An imported rule without fixtures says what to add, on the page.
    rules = runtime.settings.home / "rules"
    rules.mkdir()
    (rules / "mine.yaml").write_text(
        "name: mine\ndisplayName: Mine\ndescription: A rule of mine.\nseverity: Low\n"
        "schedule: '@1h'\n"
    )
    (rules / "mine.sql").write_text(
        "SELECT * FROM kandji_logs WHERE receivedAt >= {from:DateTime} "
        "AND receivedAt < {to:DateTime}"
    )
    page.goto("/detections/mine")
    page.get_by_role("button", name="Test its fixtures").click()
    assert page.get_by_test_id("fixtures-error").inner_text() == (
        "Detection mine has no fixtures; put mine.fixtures.yaml next to its rule and import it "
        "again."
    )
