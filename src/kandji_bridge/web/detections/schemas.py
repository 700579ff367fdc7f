"""What the Detections and Alerts pages and /api/detections, /api/alerts show."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from kandji_bridge.operations.alerts import AlertRow
from kandji_bridge.operations.detections import RuleStatus

SEVERITIES = ("Low", "Medium", "High", "Critical")


class DetectionModel(BaseModel):
    name: str
    display_name: str
    severity: str
    schedule: str
    origin: str
    enabled: bool
    channels: list[str]
    last_run: datetime | None
    last_error: str | None
    windows_reached: datetime | None
    alerts: int
    signals: int


class AlertSourceModel(BaseModel):
    id: str
    name: str  # the source's display name, or "removed source"


class AlertDeviceModel(BaseModel):
    device_id: str  # Kandji's device id
    name: str  # as its asset record holds it; empty without a record
    serial: str
    record_url: str | None  # the asset record's page, when a mapping imports the device


class AlertModel(BaseModel):
    id: str
    detection: str
    display_name: str
    severity: str
    risk_score: int
    window_from: datetime
    window_to: datetime
    matches: int
    matched_ids: list[str]
    sources: list[AlertSourceModel] = []
    devices: list[AlertDeviceModel] = []


class RuleProblemModel(BaseModel):
    rule: str
    sentence: str


class RuleFileIn(BaseModel):
    name: str = Field(description="The file's name, without a folder: NAME.yaml, .yml or .sql.")
    text: str


class RuleFilesIn(BaseModel):
    """A rules folder as its files: the service cannot read a folder on the client's machine."""

    files: list[RuleFileIn]
    folder: str = Field("", description="How sentences name the folder (the client's path).")


class ValidationOut(BaseModel):
    rules: list[str] = Field(description="The rules that are valid.")
    problems: list[str] = Field(description="One sentence per problem.")


class ImportOut(BaseModel):
    imported: list[str]
    replaced: list[str]


class EnableIn(BaseModel):
    notify: list[str] = Field(
        default_factory=list, description="Channels to send its alerts to, beyond its own."
    )


class RunIn(BaseModel):
    start: datetime = Field(description="The period's start (receivedAt), included.")
    end: datetime | None = Field(None, description="Its end, excluded; default: now.")


class MatchesOut(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool = Field(description="True when the rule matched more rows than a run keeps.")


def detection_model(status: RuleStatus) -> DetectionModel:
    rule = status.rule
    return DetectionModel(
        name=rule.name,
        display_name=rule.detection.display_name,
        severity=rule.detection.severity,
        schedule=rule.detection.schedule,
        origin=rule.origin,
        enabled=rule.enabled,
        channels=list(rule.channels),
        last_run=status.last_run,
        last_error=status.last_error,
        windows_reached=status.reached,
        alerts=status.alerts,
        signals=status.signals,
    )


def alert_model(row: AlertRow) -> AlertModel:
    alert = row.alert
    return AlertModel(
        id=alert.id,
        detection=alert.detection,
        display_name=alert.display_name,
        severity=alert.severity,
        risk_score=alert.risk_score,
        window_from=alert.window_from,
        window_to=alert.window_to,
        matches=alert.matches,
        matched_ids=alert.matched_ids,
        sources=[AlertSourceModel(id=s.id, name=s.name) for s in row.sources],
        devices=[
            AlertDeviceModel(
                device_id=d.device_id,
                name=d.name,
                serial=d.serial,
                record_url=d.record.url if d.record else None,
            )
            for d in row.devices
        ],
    )
