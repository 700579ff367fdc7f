"""The outbox: every alert to every channel it names, enqueued once, sent until accepted.

`enqueue` writes one delivery per (alert, channel), once: the pair is unique in the state DB, so
running the same window again after a crash enqueues nothing new. `deliver_due` sends what is
due, oldest first:

1. it claims a delivery by counting the attempt and moving `next_attempt_at` CLAIM_SECONDS ahead,
   in its own transaction, only if no other process claimed it first;
2. it sends, outside any transaction;
3. it marks the delivery sent only once the receiver accepted it, or records the one-sentence
   reason and when to try again (exponential backoff), or marks it failed when trying again
   cannot help (the receiver refused a credential, an address) or after MAX_ATTEMPTS.

A process that dies between 2 and 3 leaves the delivery claimed but not confirmed: it is due
again CLAIM_SECONDS later and is sent again, with the same idempotency key (the alert id), so the
receiver can drop the repeat. Delivery is at least once; with the key, a receiver sees it once.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from kandji_bridge.db import StateDB
from kandji_bridge.db.models import AlertDelivery, NotificationChannel
from kandji_bridge.detections import channels
from kandji_bridge.detections.channels import Channel, ChannelError, DeliveryFailed

PAYLOAD_VERSION = 1
PAYLOAD_MATCHES = 20  # matches shown in a notification; the detections table keeps more
MAX_ATTEMPTS = 10
BACKOFF_SECONDS = 30
MAX_BACKOFF_SECONDS = 3600
# Longer than any one send may take (channels.SEND_SECONDS for each step of it).
CLAIM_SECONDS = 120
DUE_PER_CALL = 100

Sender = Callable[[Channel, Mapping[str, str], str], None]


@dataclass(frozen=True)
class Alert:
    """What one detection run found that is worth a notification (a `detections` row's alert)."""

    id: str  # the detections table's id: stable for (rule, window), so a re-run is the same
    detection: str
    display_name: str
    description: str
    severity: str
    risk_score: int
    window_from: datetime
    window_to: datetime
    match_count: int
    matches: Sequence[Mapping[str, Any]]
    created_at: datetime
    categories: Sequence[str] = ()
    mitre_attacks: Sequence[str] = ()


@dataclass
class DeliveryReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def alert_payload(alert: Alert) -> str:
    """The JSON every channel's message is made from, and the webhook's body as is."""
    return json.dumps(
        {
            "type": "kandji-bridge.alert",
            "version": PAYLOAD_VERSION,
            "idempotencyKey": alert.id,
            "alert": {
                "id": alert.id,
                "detection": alert.detection,
                "displayName": alert.display_name,
                "description": alert.description,
                "severity": alert.severity,
                "riskScore": alert.risk_score,
                "categories": list(alert.categories),
                "mitreAttacks": list(alert.mitre_attacks),
                "windowFrom": _when(alert.window_from),
                "windowTo": _when(alert.window_to),
                "matchCount": alert.match_count,
                "matches": [dict(m) for m in alert.matches[:PAYLOAD_MATCHES]],
                "createdAt": _when(alert.created_at),
            },
        },
        default=str,
        separators=(",", ":"),
    )


def enqueue(state: StateDB, alert: Alert, channel_names: Sequence[str], now: datetime) -> int:
    """One delivery of `alert` per named channel, unless already enqueued; returns how many are
    new. An unknown channel name is ChannelError (the rule names a channel that was removed)."""
    payload = alert_payload(alert)
    added = 0
    with state.session() as session:
        rows = session.scalars(
            select(NotificationChannel).where(NotificationChannel.name.in_(channel_names))
        ).all()
        missing = sorted(set(channel_names) - {row.name for row in rows})
        if missing:
            raise ChannelError(
                f"Detection {alert.detection} names the notification channel(s) "
                f"{', '.join(missing)}, which do not exist; add them or change the rule's "
                "notificationNames."
            )
        for row in rows:
            exists = session.scalar(
                select(AlertDelivery.id).where(
                    AlertDelivery.alert_id == alert.id, AlertDelivery.channel_id == row.id
                )
            )
            if exists is not None:
                continue
            try:
                with session.begin_nested():
                    session.add(
                        AlertDelivery(
                            alert_id=alert.id,
                            channel_id=row.id,
                            payload=payload,
                            next_attempt_at=now,
                        )
                    )
                added += 1
            except IntegrityError:  # another process enqueued it at the same moment
                continue
    return added


def deliver_due(
    state: StateDB, now: datetime, *, send: Sender = channels.send, limit: int = DUE_PER_CALL
) -> DeliveryReport:
    """Send the deliveries due at `now` to enabled channels; see the module docstring."""
    report = DeliveryReport()
    with state.session() as session:
        due = session.execute(
            select(AlertDelivery.id, AlertDelivery.next_attempt_at)
            .join(NotificationChannel, NotificationChannel.id == AlertDelivery.channel_id)
            .where(
                AlertDelivery.status == "pending",
                AlertDelivery.next_attempt_at <= now,
                NotificationChannel.enabled.is_(True),
            )
            .order_by(AlertDelivery.next_attempt_at)
            .limit(limit)
        ).all()
    for delivery_id, due_at in due:
        claimed = _claim(state, delivery_id, due_at, now)
        if claimed is None:
            continue  # another process has it
        channel, payload, attempts = claimed
        try:
            send(channel, _secrets(state, channel), payload)
        except DeliveryFailed as exc:
            _failed(state, delivery_id, exc, attempts, now, report)
            continue
        with state.session() as session:
            session.execute(
                update(AlertDelivery)
                .where(AlertDelivery.id == delivery_id)
                .values(status="sent", sent_at=now, last_error=None)
            )
        report.sent += 1
    return report


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min, ... 1 h."""
    return timedelta(seconds=min(BACKOFF_SECONDS * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def deliveries(state: StateDB, alert_id: str | None = None) -> list[AlertDelivery]:
    """The outbox's rows (of one alert), oldest first, detached for reading."""
    with state.session() as session:
        query = select(AlertDelivery).order_by(AlertDelivery.created_at, AlertDelivery.id)
        if alert_id is not None:
            query = query.where(AlertDelivery.alert_id == alert_id)
        rows = session.scalars(query).all()
        session.expunge_all()
        return list(rows)


def _claim(
    state: StateDB, delivery_id: str, due_at: datetime, now: datetime
) -> tuple[Channel, str, int] | None:
    with state.session() as session:
        taken = session.execute(
            update(AlertDelivery)
            .where(
                AlertDelivery.id == delivery_id,
                AlertDelivery.status == "pending",
                AlertDelivery.next_attempt_at == due_at,
            )
            .values(
                attempts=AlertDelivery.attempts + 1,
                next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS),
            )
        )
        if taken.rowcount != 1:
            return None
        delivery = session.get(AlertDelivery, delivery_id)
        channel = channels.channel_from_row(session.get(NotificationChannel, delivery.channel_id))
        return channel, delivery.payload, delivery.attempts


def _secrets(state: StateDB, channel: Channel) -> dict[str, str]:
    """The channel's secrets; a key that cannot decrypt them fails the delivery for good."""
    with state.session() as session:
        row = session.get(NotificationChannel, channel.id)
        if row is None:
            raise DeliveryFailed(f"Channel {channel.name} was removed.", permanent=True)
        try:
            return channels.channel_secrets(state.settings, row)
        except ChannelError as exc:
            raise DeliveryFailed(str(exc), permanent=True) from None


def _failed(
    state: StateDB,
    delivery_id: str,
    exc: DeliveryFailed,
    attempts: int,
    now: datetime,
    report: DeliveryReport,
) -> None:
    give_up = exc.permanent or attempts >= MAX_ATTEMPTS
    sentence = exc.sentence
    if not exc.permanent and give_up:
        sentence = f"{sentence.rstrip('.')} (given up after {attempts} attempts)."
    values: dict[str, Any] = {"last_error": sentence}
    if give_up:
        values["status"] = "failed"
        report.failed += 1
    else:
        values["next_attempt_at"] = now + backoff(attempts)
        report.retrying += 1
    report.errors.append(sentence)
    with state.session() as session:
        session.execute(
            update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(**values)
        )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
