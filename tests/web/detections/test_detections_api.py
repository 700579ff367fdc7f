"""/api/detections and /api/alerts as a script uses them."""

from kandji_bridge.operations import detections as ops
from kandji_bridge.service.runtime import Runtime

RULE = "kandji-delete-burst"


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
