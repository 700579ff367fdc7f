"""The Alerts page in Chromium: filtered by the source of the matched events, and linking to the
asset record of a deleted device besides the event itself."""

import json
import re
from datetime import UTC, datetime, timedelta

from kandji_bridge import source_registry as sources
from kandji_bridge.db.models import Collection, MappedDevice, Mapping, Record
from kandji_bridge.detections.channels import add_webhook
from kandji_bridge.detections.fixtures import FixtureEvent
from kandji_bridge.detections.rules import previous_run
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.transform import transform
from kandji_bridge.operations import detections as ops
from kandji_bridge.service.runtime import Runtime

RULE = "kandji-device-deleted-or-mdm-removed"
DEVICE_ID = "0b0f3f1e-4c9c-4c53-9b54-6d4f1f3b2a10"


def store_device_delete(runtime: Runtime, source_id: str, received: datetime) -> None:
    event = {
        "id": "01JNQA0000000000000000WEB2",
        "action": "delete",
        "occurred_at": received.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "actor_type": "user",
        "target_id": DEVICE_ID,
        "target_type": "device",
        "target_component": "",
        "new_state": {"device_name": "Jane's MacBook Pro", "serial_number": "C02XK1JHJG5J"},
        "metadata": {},
    }
    context = NormalizeContext("ws", source_id, 0, received_at=received)
    enricher = build_enricher([], use_geoip2fast=False, env={})
    try:
        out = transform([FixtureEvent(timedelta(0), event, json.dumps(event))], context, enricher)
    finally:
        enricher.close()
    runtime.store.insert(out.rows)


def device_record(runtime: Runtime, source_id: str) -> str:
    """The asset record a mapping made from the device; returns its id."""
    with runtime.state.session() as session:
        collection = Collection(name="Company Laptops")
        session.add(collection)
        session.flush()
        record = Record(collection_id=collection.id)
        mapping = Mapping(name="Macs", source_id=source_id, collection_id=collection.id)
        session.add_all([record, mapping])
        session.flush()
        session.add(MappedDevice(mapping_id=mapping.id, device_id=DEVICE_ID, record_id=record.id))
        return record.id


def test_alerts_filter_by_source_and_link_to_the_device_record(runtime: Runtime, page) -> None:
    acme = sources.add_source(runtime.state, "acme", "https://acme.api.kandji.io", "token-1")
    sources.add_source(runtime.state, "globex", "https://globex.api.kandji.io", "token-2")
    record_id = device_record(runtime, acme.id)
    boundary = previous_run("*/15 * * * *", datetime.now(UTC))
    store_device_delete(runtime, acme.id, boundary - timedelta(minutes=5))
    add_webhook(runtime.state, "siem", "http://127.0.0.1:9/none", "a signing secret")
    ops.set_enabled(runtime.state, runtime.store, RULE, True, ("siem",))
    assert ops.run_due_windows(runtime.settings, runtime.state, runtime.store, RULE, boundary)

    page.goto("/alerts")
    page.select_option("#f-source", label="globex")
    page.get_by_role("button", name="Filter").click()
    assert page.get_by_role("heading", name="No alerts").is_visible()
    page.select_option("#f-source", label="acme")
    page.get_by_role("button", name="Filter").click()
    assert RULE in page.get_by_test_id("alerts").inner_html()
    page.get_by_test_id("device-link").first.click()
    page.wait_for_url(re.compile(rf".*/collections/Company%20Laptops/records/{record_id}"))
