"""/api/detections and /api/alerts as a script uses them."""

import json
from datetime import UTC, datetime, timedelta

from inventory.helpers import ITAM_FIELDS, make_mapping, sync
from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import parse_field_spec
from kandji_bridge.detections.channels import add_webhook
from kandji_bridge.detections.fixtures import FixtureEvent
from kandji_bridge.detections.rules import previous_run
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.transform import transform
from kandji_bridge.operations import detections as ops
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

RULE = "kandji-delete-burst"
DEVICE_RULE = "kandji-device-deleted-or-mdm-removed"


def test_list_enable_disable_and_alerts(runtime: Runtime, api) -> None:
    listed = api.get("/api/detections")
    assert listed.status_code == 200
    rules = {item["name"]: item for item in listed.json()}
    assert rules[RULE]["enabled"] is False and rules[RULE]["origin"] == "pack"

    enabled = api.post(f"/api/detections/{RULE}/enable")
    assert enabled.status_code == 200 and enabled.json()["enabled"] is True
    assert ops.enabled_rule_names(runtime.state) == [RULE]
    assert api.post(f"/api/detections/{RULE}/disable").json()["enabled"] is False

    unknown = api.post("/api/detections/kandji-no-such-rule/enable")
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("There is no detection named kandji-no-such-rule")

    assert api.get("/api/alerts", params={"severity": "High"}).json() == []


def store_device_deletes(
    runtime: Runtime, source_id: str, devices: list[str], at: datetime
) -> None:
    events = [
        {
            "id": f"01JNQD00000000000000000{index:03d}",
            "action": "delete",
            "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
            "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
            "actor_type": "user",
            "target_id": device,
            "target_type": "device",
            "target_component": "",
            "new_state": {},
            "metadata": {},
        }
        for index, device in enumerate(devices)
    ]
    context = NormalizeContext("ws", source_id, 0, received_at=at)
    enricher = build_enricher([], use_geoip2fast=False, env={})
    try:
        batch = [FixtureEvent(timedelta(0), event, json.dumps(event)) for event in events]
        runtime.store.insert(transform(batch, context, enricher).rows)
    finally:
        enricher.close()


def test_alerts_carry_their_sources_and_devices_as_the_page_shows_them(
    runtime: Runtime, api, allow_simulator: RunningSimulator
) -> None:
    state = runtime.state
    acme = sources.add_source(state, "acme", allow_simulator.base_url, allow_simulator.token)
    sources.update_source(state, "acme", display_name="Acme Corp")
    collections.create_collection(state, "ITAM", [parse_field_spec(s) for s in ITAM_FIELDS])
    make_mapping(state, source="acme")
    assert sync(state).created == len(allow_simulator.devices)
    imported = allow_simulator.devices[0]
    unknown = "5e1f0a3c-0000-4000-8000-00000000dead"  # in no collection
    boundary = previous_run("*/15 * * * *", datetime.now(UTC))
    at = boundary - timedelta(minutes=5)
    store_device_deletes(runtime, acme.id, [imported.device_id, unknown], at)
    add_webhook(state, "siem", "https://siem.example.com/hooks", "a signing secret of the test")
    ops.set_enabled(state, runtime.store, DEVICE_RULE, True, ("siem",))
    assert ops.run_due_windows(runtime.settings, state, runtime.store, DEVICE_RULE, boundary)

    listed = api.get("/api/alerts", params={"source": acme.id})
    assert listed.status_code == 200
    alerts = listed.json()
    assert alerts, "the rule's matches are listed"
    alert = alerts[0]
    assert alert["sources"] == [{"id": acme.id, "name": "Acme Corp"}]
    devices = {device["device_id"]: device for device in alert["devices"]}
    assert devices[unknown] == {
        "device_id": unknown,
        "name": "",
        "serial": "",
        "record_url": None,
    }
    shown = devices[imported.device_id]
    assert (shown["name"], shown["serial"]) == (imported.device_name, imported.serial_number)
    assert shown["record_url"].startswith("/collections/ITAM/records/")
    assert api.get("/api/alerts", params={"source": "no-such-source"}).json() == []
