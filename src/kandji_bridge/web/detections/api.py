"""/api/detections and /api/alerts: the rules, their switches, and the alerts they raised."""

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from kandji_bridge.errors import BridgeError
from kandji_bridge.operations import alerts as alert_ops
from kandji_bridge.operations import detections as ops
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.detections.schemas import (
    AlertModel,
    DetectionModel,
    EnableIn,
    ImportOut,
    MatchesOut,
    RuleFilesIn,
    RuleProblemModel,
    RunIn,
    ValidationOut,
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


@api.get("/detections/problems", summary="List detection rule problems")
def list_rule_problems(request: Request, principal: CurrentUser) -> list[RuleProblemModel]:
    """The rules in the home's rules folder that do not load, one sentence each."""
    runtime = runtime_of(request)
    problems = ops.list_rules(runtime.state, runtime.store).problems
    return [RuleProblemModel(rule=p.rule, sentence=p.sentence) for p in problems]


@api.post("/detections/validate", summary="Validate detection rules")
def validate_rules(request: Request, principal: CurrentUser, body: RuleFilesIn) -> ValidationOut:
    """Check a folder's rules, sent as its files; nothing is imported."""
    checked = ops.validate_files(_rule_files(body), runtime_of(request).store)
    return ValidationOut(
        rules=[d.name for d in checked.detections],
        problems=[p.sentence for p in checked.problems],
    )


@api.post("/detections/import", summary="Import detection rules")
def import_rules(request: Request, principal: CurrentUser, body: RuleFilesIn) -> ImportOut:
    """Copy a folder's rules, sent as its files, into the home (all or nothing)."""
    runtime = runtime_of(request)
    report = ops.import_files(
        runtime.settings, runtime.store, _rule_files(body), body.folder or "sent"
    )
    return ImportOut(imported=report.imported, replaced=report.replaced)


@api.post("/detections/{name}/run", summary="Run a detection")
def run_detection(request: Request, principal: CurrentUser, name: str, body: RunIn) -> MatchesOut:
    """The rule's matches over [start, end) of receivedAt, now; nothing is stored or sent."""
    start, end = body.start, body.end or datetime.now(UTC)
    if _utc(start) >= _utc(end):
        raise BridgeError(
            "The period's start is not before its end; give a start that comes first."
        )
    runtime = runtime_of(request)
    matches = ops.run_rule(runtime.state, runtime.store, name, start, end)
    return MatchesOut(columns=matches.columns, rows=matches.rows, truncated=matches.truncated)


def _rule_files(body: RuleFilesIn) -> list[ops.RuleFile]:
    return [ops.RuleFile(f.name, f.text) for f in body.files]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _one(request: Request, name: str) -> DetectionModel:
    runtime = runtime_of(request)
    statuses = ops.rule_statuses(runtime.settings, runtime.state, runtime.store)
    return detection_model(next(s for s in statuses if s.rule.name == name))


@api.post("/detections/{name}/enable", summary="Enable a detection")
def enable_detection(
    request: Request, principal: CurrentUser, name: str, body: EnableIn | None = None
) -> DetectionModel:
    """Run the rule on its schedule (in serve), sending its alerts to `notify` too if given."""
    runtime = runtime_of(request)
    notify = tuple(body.notify) if body else ()
    if notify:
        alert_ops.check_channels(runtime.state, list(notify))
    ops.set_enabled(runtime.state, runtime.store, name, True, notify)
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
