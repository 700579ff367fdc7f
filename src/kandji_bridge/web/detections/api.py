"""/api/detections and /api/alerts: the rules, their switches, and the alerts they raised."""

from fastapi import APIRouter, Request

from kandji_bridge.operations import alerts as alert_ops
from kandji_bridge.operations import detections as ops
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.detections.schemas import (
    AlertModel,
    DetectionModel,
    alert_model,
    detection_model,
)

api = APIRouter(tags=["detections"])


@api.get("/detections", summary="List detections")
def list_detections(request: Request, principal: CurrentUser) -> list[DetectionModel]:
    """Every rule (the built-in pack and imported ones), its switch, last run and counts."""
    runtime = runtime_of(request)
    statuses = ops.rule_statuses(runtime.settings, runtime.state, runtime.store)
    return [detection_model(status) for status in statuses]


def _one(request: Request, name: str) -> DetectionModel:
    runtime = runtime_of(request)
    statuses = ops.rule_statuses(runtime.settings, runtime.state, runtime.store)
    return detection_model(next(s for s in statuses if s.rule.name == name))


@api.post("/detections/{name}/enable", summary="Enable a detection")
def enable_detection(request: Request, principal: CurrentUser, name: str) -> DetectionModel:
    """Run the rule on its schedule (in serve)."""
    runtime = runtime_of(request)
    ops.set_enabled(runtime.state, runtime.store, name, True)
    return _one(request, name)


@api.post("/detections/{name}/disable", summary="Disable a detection")
def disable_detection(request: Request, principal: CurrentUser, name: str) -> DetectionModel:
    """Stop running the rule; what it found stays."""
    runtime = runtime_of(request)
    ops.set_enabled(runtime.state, runtime.store, name, False)
    return _one(request, name)


@api.get("/alerts", summary="List alerts")
def list_alerts(
    request: Request,
    principal: CurrentUser,
    detection: str | None = None,
    severity: str | None = None,
    source: str | None = None,
    limit: int = 100,
) -> list[AlertModel]:
    """The newest alerts, of one rule, one severity or one source (id) if given, each with the
    sources of its matched events and the devices they targeted (with their asset records), as
    the Alerts page shows them."""
    runtime = runtime_of(request)
    found = alert_ops.browse_alerts(
        runtime.state, runtime.store, detection, severity, source, max(1, min(limit, 10_000))
    )
    return [alert_model(row) for row in found]
