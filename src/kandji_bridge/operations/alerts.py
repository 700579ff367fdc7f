"""Alerts and where they go: the alerts the detections stored, the notification channels, a test
message to a channel, and the outbox's delivery run."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kandji_bridge import source_registry
from kandji_bridge.db.models import NotificationChannel
from kandji_bridge.db.state import StateDB
from kandji_bridge.detections import channels
from kandji_bridge.detections.channels import Channel, ChannelError, EmailServer
from kandji_bridge.detections.outbox import (
    Alert,
    DeliveryReport,
    alert_payload,
    deliver_due,
)
from kandji_bridge.detections.results import ensure_detections_table, read_records
from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import LogStore
from kandji_bridge.operations.explorer import REMOVED_SOURCE, AssetLink, device_records

ALERT = "alert"
TEST_DETECTION = "kandji-bridge-channel-test"


@dataclass(frozen=True)
class StoredAlert:
    id: str
    detection: str
    display_name: str
    severity: str
    risk_score: int
    window_from: datetime
    window_to: datetime
    matches: int
    matched_ids: list[str]
    created_at: datetime


def list_alerts(
    store: LogStore,
    detection: str | None = None,
    severity: str | None = None,
    limit: int = 100,
) -> list[StoredAlert]:
    """The newest alerts (of one rule, of one severity), newest window first."""
    ensure_detections_table(store)
    rows = read_records(store, detection=detection, kind=ALERT, limit=limit)
    alerts = [_alert(row) for row in rows]
    if severity is not None:
        alerts = [a for a in alerts if a.severity.lower() == severity.lower()]
    return alerts


@dataclass(frozen=True)
class AlertSource:
    """A source whose events an alert matched: its id and the name it is shown by."""

    id: str
    name: str  # its display name, or REMOVED_SOURCE when it was removed since


@dataclass(frozen=True)
class AlertDevice:
    """A Kandji device an alert's matched events targeted, and the asset record a mapping made
    from it (None when no mapping imports it)."""

    device_id: str
    record: AssetLink | None = None

    @property
    def name(self) -> str:
        return self.record.device_name if self.record else ""

    @property
    def serial(self) -> str:
        return self.record.serial if self.record else ""


@dataclass(frozen=True)
class AlertRow:
    """An alert as the Alerts page (and /api/alerts) shows it: the sources of its matched
    events, and the devices they targeted with their asset records."""

    alert: StoredAlert
    sources: tuple[AlertSource, ...]
    devices: tuple[AlertDevice, ...]


def browse_alerts(
    state: StateDB,
    store: LogStore,
    detection: str | None = None,
    severity: str | None = None,
    source_id: str | None = None,
    limit: int = 100,
) -> list[AlertRow]:
    """The newest alerts (of one rule, of one severity, with a matched event of one source), each
    with its matched events' sources and targeted devices."""
    alerts = list_alerts(store, detection, severity, limit)
    matched = _matched_events(store, [i for a in alerts for i in a.matched_ids])
    records = device_records(state, [t for _, t in matched.values() if t])
    names = {info.id: info.shown_name for info in source_registry.list_sources(state)}
    rows = []
    for alert in alerts:
        events = [matched[i] for i in alert.matched_ids if i in matched]
        source_ids = tuple(dict.fromkeys(source for source, _ in events))
        if source_id and source_id not in source_ids:
            continue
        sources = tuple(AlertSource(i, names.get(i, REMOVED_SOURCE)) for i in source_ids)
        devices = tuple(
            AlertDevice(device, next(iter(records.get(device, [])), None))
            for device in dict.fromkeys(t for _, t in events if t)
        )
        rows.append(AlertRow(alert, sources, devices))
    return rows


def _matched_events(store: LogStore, ids: list[str]) -> dict[str, tuple[str, str]]:
    """kandji_logs id -> (sourceID, the device id when the event's target is a device)."""
    if not ids:
        return {}
    quoted = ",".join("'" + i.replace("\\", "\\\\").replace("'", "\\'") + "'" for i in ids)
    result = store.query(
        f"SELECT id, sourceID, if(targetType = 'device', targetId, '') FROM {LOGS_TABLE} "  # noqa: S608
        "WHERE id IN {ids:Array(String)}",
        params={"ids": f"[{quoted}]"},
    )
    return {str(i): (str(source), str(device)) for i, source, device in result.rows}


def add_channel(
    state: StateDB,
    kind: str,
    name: str,
    *,
    url: str = "",
    secret: str | None = None,
    email: EmailServer | None = None,
) -> tuple[Channel, str | None]:
    """Add a channel; returns it and, for a webhook, its signing secret (shown once)."""
    if kind == "webhook":
        return channels.add_webhook(state, name, url, secret)
    if kind == "slack":
        return channels.add_slack(state, name, url), None
    if kind == "email" and email is not None:
        return channels.add_email(state, name, email), None
    raise ChannelError(f"A channel is a webhook, slack or email, not {kind!r}.")


def check_channels(state: StateDB, names: list[str]) -> None:
    """ChannelError (one sentence) for the first name that is not a channel."""
    for name in names:
        channels.get_channel(state, name)


def list_channels(state: StateDB) -> list[Channel]:
    return channels.list_channels(state)


def remove_channel(state: StateDB, name: str) -> None:
    channels.remove_channel(state, name)


def test_channel(state: StateDB, name: str, now: datetime | None = None) -> None:
    """Send a test alert to a channel now; its one-sentence failure is a BridgeError."""
    channel = channels.get_channel(state, name)
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    alert = Alert(
        id=f"test-{int(now.timestamp())}",
        detection=TEST_DETECTION,
        display_name="kandji-bridge test alert",
        description=f"A test of the notification channel {name}; no detection fired.",
        severity="Low",
        risk_score=0,
        window_from=now,
        window_to=now,
        match_count=0,
        matches=[],
        created_at=now,
    )
    with state.session() as session:
        row = session.get(NotificationChannel, channel.id)
        hidden = channels.channel_secrets(state.settings, row)
    try:
        channels.send(channel, hidden, alert_payload(alert))
    except channels.DeliveryFailed as exc:
        raise BridgeError(exc.sentence) from None


def deliver_alerts(state: StateDB, now: datetime | None = None) -> DeliveryReport:
    """Send what the outbox holds that is due (the outbox job)."""
    return deliver_due(state, now or datetime.now(UTC))


def _alert(row: dict[str, Any]) -> StoredAlert:
    return StoredAlert(
        id=str(row["id"]),
        detection=str(row["detectionName"]),
        display_name=str(row["displayName"]),
        severity=str(row["severity"]),
        risk_score=int(row["riskScore"]),
        window_from=_aware(row["windowFrom"]),
        window_to=_aware(row["windowTo"]),
        matches=int(row["recordsReturned"]),
        matched_ids=[str(i) for i in row.get("matchedIds") or ()],
        created_at=_aware(row["createdAt"]),
    )


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
