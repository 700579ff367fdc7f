"""Channels and the outbox against real local receivers, on SQLite and PostgreSQL.

A webhook receiver (an HTTP server that checks the HMAC), a Slack-shaped one, and aiosmtpd as a
real SMTP server with STARTTLS and a self-signed certificate made in the test. Deliveries are
enqueued once, sent once the receiver accepts them, retried with backoff while it is down, and
survive the sending process being killed mid-delivery.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from kandji_bridge.db import StateDB
from kandji_bridge.db.models import NotificationChannel
from kandji_bridge.detections import channels, outbox
from kandji_bridge.detections.channels import ChannelError, EmailServer
from kandji_bridge.detections.outbox import Alert, deliver_due, deliveries, enqueue

from .receivers import HttpReceiver, SmtpReceiver, free_port, signature_ok

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SECRET = "s3cret-signing-key-0123456789abcdef"


def make_alert(alert_id: str = "9f1c2d3e4b5a69788796a5b4c3d2e1f0") -> Alert:
    return Alert(
        id=alert_id,
        detection="kandji-api-token-created",
        display_name="Kandji API Token Created",
        description="A Kandji API token was created.",
        severity="Medium",
        risk_score=50,
        window_from=NOW - timedelta(minutes=15),
        window_to=NOW,
        match_count=2,
        matches=[
            {
                "id": "row-1",
                "eventTime": "2026-12-06 08:50:00",
                "eventName": "api_token.create",
                "actorId": "u-1",
                "actorType": "user",
                "targetId": "tok-1",
            },
            {"id": "row-2", "eventTime": "2026-12-06 08:51:00", "eventName": "api_token.create"},
        ],
        created_at=NOW,
        categories=("kandji",),
        mitre_attacks=("TA0003",),
    )


@pytest.fixture
def webhook() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    yield receiver
    receiver.stop()


def test_a_webhook_gets_the_documented_payload_signed_and_once(
    state: StateDB, webhook: HttpReceiver
) -> None:
    channels.add_webhook(state, "siem", webhook.url, SECRET)
    alert = make_alert()
    assert enqueue(state, alert, ["siem"], NOW) == 1
    assert enqueue(state, alert, ["siem"], NOW) == 0  # the same alert again: already queued

    report = deliver_due(state, NOW)

    assert (report.sent, report.retrying, report.failed) == (1, 0, 0)
    [got] = webhook.requests
    assert signature_ok(got, SECRET)
    assert not signature_ok(got, "another-secret-0123456789")
    assert got.headers["Idempotency-Key"] == alert.id
    body = got.json()
    assert body["idempotencyKey"] == alert.id
    assert body["alert"]["detection"] == "kandji-api-token-created"
    assert body["alert"]["matchCount"] == 2
    assert body["alert"]["windowFrom"] == "2026-12-06T08:45:00Z"
    assert [m["id"] for m in body["alert"]["matches"]] == ["row-1", "row-2"]
    [row] = deliveries(state)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert deliver_due(state, NOW + timedelta(hours=1)).sent == 0  # nothing more to send
    assert len(webhook.requests) == 1


def test_a_receiver_down_then_up_gets_the_alert_once(state: StateDB) -> None:
    receiver = HttpReceiver()  # not started: its port refuses connections
    channels.add_webhook(state, "siem", receiver.url, SECRET)
    enqueue(state, make_alert(), ["siem"], NOW)

    first = deliver_due(state, NOW)
    [row] = deliveries(state)
    assert (first.sent, first.retrying) == (0, 1)
    assert row.status == "pending" and row.attempts == 1
    assert row.last_error == (
        f"Channel siem: cannot reach the webhook at 127.0.0.1:{receiver.port} (connection "
        "failed); check that the receiver is up."
    )
    assert row.next_attempt_at == NOW + outbox.backoff(1)
    assert deliver_due(state, NOW + timedelta(seconds=10)).sent == 0  # not due yet

    receiver.start()
    try:
        second = deliver_due(state, NOW + outbox.backoff(1))
    finally:
        receiver.stop()
    [row] = deliveries(state)
    assert second.sent == 1
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)
    assert len(receiver.requests) == 1


def test_backoff_doubles_and_is_capped() -> None:
    assert [outbox.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert outbox.backoff(20) == timedelta(hours=1)


def test_a_delivery_whose_sender_was_killed_mid_send_is_sent_again_and_dropped_by_its_key(
    state: StateDB, webhook: HttpReceiver
) -> None:
    """The sending process dies after the receiver got the alert and before it was marked sent
    (SIGKILL, from the receiver itself): the delivery is due again once its claim runs out."""
    channels.add_webhook(state, "siem", webhook.url, SECRET)
    alert = make_alert()
    enqueue(state, alert, ["siem"], NOW)
    sender: list[subprocess.Popen] = []

    def kill_the_sender(_got: object) -> None:
        if len(webhook.requests) == 1:
            os.kill(sender[0].pid, signal.SIGKILL)
            sender[0].wait(timeout=30)

    webhook.on_request = kill_the_sender
    script = (
        "import sys\n"
        "from datetime import datetime\n"
        "from kandji_bridge.config import load_settings\n"
        "from kandji_bridge.db import open_state\n"
        "from kandji_bridge.detections.outbox import deliver_due\n"
        "with open_state(load_settings()) as state:\n"
        "    deliver_due(state, datetime.fromisoformat(sys.argv[1]))\n"
    )
    sender.append(subprocess.Popen([sys.executable, "-c", script, NOW.isoformat()]))
    assert sender[0].wait(timeout=60) == -signal.SIGKILL
    [row] = deliveries(state)
    assert (row.status, row.attempts) == ("pending", 1)  # claimed, never confirmed

    assert deliver_due(state, NOW + timedelta(seconds=30)).sent == 0  # still claimed
    report = deliver_due(state, NOW + timedelta(seconds=outbox.CLAIM_SECONDS))

    assert report.sent == 1
    [row] = deliveries(state)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [r.headers["Idempotency-Key"] for r in webhook.requests] == [alert.id, alert.id]
    assert webhook.accepted_keys == [alert.id]  # the receiver kept it once


def test_a_refusing_slack_webhook_fails_with_one_sentence_naming_the_channel(
    state: StateDB,
) -> None:
    slack = HttpReceiver(status=403, reply=b"invalid_token").start()
    try:
        channels.add_slack(state, "secops-slack", slack.url)
        enqueue(state, make_alert(), ["secops-slack"], NOW)
        report = deliver_due(state, NOW)
    finally:
        slack.stop()
    [row] = deliveries(state)
    assert (report.failed, row.status, row.attempts) == (1, "failed", 1)
    assert row.last_error == (
        "Channel secops-slack: Slack refused the message (HTTP 403, invalid_token); the webhook "
        "was revoked or its Slack channel removed: make a new incoming webhook in Slack and add "
        "the channel again."
    )
    assert slack.url not in row.last_error
    message = slack.requests[0].json()
    assert message["text"] == "Medium alert: Kandji API Token Created (2 matches)"
    assert message["blocks"][0]["type"] == "header"
    assert "api_token.create by user u-1 on tok-1" in message["blocks"][3]["text"]["text"]
    assert deliver_due(state, NOW + timedelta(days=1)).sent == 0  # failed stays failed


def test_a_webhook_refusing_the_signature_fails_at_once_with_one_sentence(state: StateDB) -> None:
    receiver = HttpReceiver(status=401, reply=b"bad signature").start()
    try:
        channels.add_webhook(state, "siem", receiver.url, SECRET)
        enqueue(state, make_alert(), ["siem"], NOW)
        report = deliver_due(state, NOW)
    finally:
        receiver.stop()
    [row] = deliveries(state)
    assert (report.failed, row.status, row.attempts) == (1, "failed", 1)
    assert row.last_error == (
        "Channel siem: the webhook refused the alert (HTTP 401); check the channel's URL and "
        "that the receiver has its secret (this alert is not retried)."
    )
    assert SECRET not in row.last_error


def test_a_slack_webhook_that_accepts_gets_text_and_blocks(state: StateDB) -> None:
    slack = HttpReceiver().start()
    try:
        channels.add_slack(state, "secops-slack", slack.url)
        enqueue(state, make_alert(), ["secops-slack"], NOW)
        assert deliver_due(state, NOW).sent == 1
    finally:
        slack.stop()
    message = slack.requests[0].json()
    assert set(message) == {"text", "blocks"}
    assert "X-Kandji-Bridge-Signature" not in slack.requests[0].headers


def test_email_goes_over_starttls_with_the_stored_credentials(
    state: StateDB, tmp_path: Path
) -> None:
    smtp = SmtpReceiver(tmp_path, username="alerts", password="smtp-pass-0123456789").start()
    try:
        channels.add_email(
            state,
            "soc-mail",
            EmailServer(
                host="127.0.0.1",
                port=smtp.port,
                sender="kandji-bridge@example.com",
                recipients=["soc@example.com"],
                username="alerts",
                password="smtp-pass-0123456789",
                ca_file=str(smtp.cert),
            ),
        )
        alert = make_alert()
        enqueue(state, alert, ["soc-mail"], NOW)
        report = deliver_due(state, NOW)
    finally:
        smtp.stop()
    assert report.sent == 1, report.errors
    [mail] = smtp.mails
    assert mail.over_tls
    assert mail.recipients == ["soc@example.com"]
    assert mail.message["Message-ID"] == f"<{alert.id}@kandji-bridge>"
    assert mail.message["Subject"] == "[kandji-bridge] Medium: Kandji API Token Created (2)"
    with state.session() as session:
        stored = session.scalars(select(NotificationChannel)).one()
        assert "smtp-pass" not in stored.secret_ciphertext
        assert "smtp-pass" not in stored.settings
        assert "alerts" not in stored.secret_ciphertext


def test_an_smtp_server_refusing_the_password_fails_with_one_sentence(
    state: StateDB, tmp_path: Path
) -> None:
    smtp = SmtpReceiver(tmp_path, username="alerts", password="the-right-one-0123").start()
    try:
        channels.add_email(
            state,
            "soc-mail",
            EmailServer(
                host="127.0.0.1",
                port=smtp.port,
                sender="kandji-bridge@example.com",
                recipients=["soc@example.com"],
                username="alerts",
                password="a-wrong-password-0123",
                ca_file=str(smtp.cert),
            ),
        )
        enqueue(state, make_alert(), ["soc-mail"], NOW)
        report = deliver_due(state, NOW)
    finally:
        smtp.stop()
    [row] = deliveries(state)
    assert (report.failed, row.status) == (1, "failed")
    assert row.last_error == (
        f"Channel soc-mail: the SMTP server 127.0.0.1:{smtp.port} refused the username or "
        "password (535); update the channel's credentials."
    )
    assert "a-wrong-password" not in row.last_error
    assert smtp.mails == []


def test_an_smtp_certificate_not_trusted_is_refused_not_sent_in_clear(
    state: StateDB, tmp_path: Path
) -> None:
    smtp = SmtpReceiver(tmp_path).start()
    try:
        channels.add_email(
            state,
            "soc-mail",
            EmailServer("127.0.0.1", smtp.port, "kb@example.com", ["soc@example.com"]),
        )
        enqueue(state, make_alert(), ["soc-mail"], NOW)
        deliver_due(state, NOW)
    finally:
        smtp.stop()
    [row] = deliveries(state)
    assert row.status == "failed"
    assert row.last_error == (
        f"Channel soc-mail: the SMTP server 127.0.0.1:{smtp.port} presented a certificate that is "
        "not trusted; give the channel the CA file that signed it."
    )
    assert smtp.mails == []


def test_an_smtp_server_that_is_down_is_retried(state: StateDB) -> None:
    port = free_port()
    channels.add_email(
        state, "soc-mail", EmailServer("127.0.0.1", port, "kb@example.com", ["soc@example.com"])
    )
    enqueue(state, make_alert(), ["soc-mail"], NOW)
    assert deliver_due(state, NOW).retrying == 1
    [row] = deliveries(state)
    assert row.status == "pending"
    assert row.last_error == (
        f"Channel soc-mail: cannot reach the SMTP server 127.0.0.1:{port} (connection failed); "
        "check that the server is up."
    )


def test_a_delivery_gives_up_after_the_last_attempt(state: StateDB) -> None:
    receiver = HttpReceiver(status=503).start()
    try:
        channels.add_webhook(state, "siem", receiver.url, SECRET)
        enqueue(state, make_alert(), ["siem"], NOW)
        when = NOW
        for _ in range(outbox.MAX_ATTEMPTS):
            deliver_due(state, when)
            [row] = deliveries(state)
            when = row.next_attempt_at
    finally:
        receiver.stop()
    [row] = deliveries(state)
    assert (row.status, row.attempts) == ("failed", outbox.MAX_ATTEMPTS)
    assert row.last_error == (
        "Channel siem: the webhook answered HTTP 503; check the receiver's logs "
        f"(given up after {outbox.MAX_ATTEMPTS} attempts)."
    )


def test_enqueue_names_a_missing_channel_in_one_sentence(state: StateDB) -> None:
    with pytest.raises(ChannelError) as raised:
        enqueue(state, make_alert(), ["nope"], NOW)
    assert str(raised.value) == (
        "Detection kandji-api-token-created names the notification channel(s) nope, which do "
        "not exist; add them or change the rule's notificationNames."
    )


def test_a_webhook_secret_and_a_slack_url_are_never_stored_in_clear(state: StateDB) -> None:
    slack_url = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX"
    channels.add_slack(state, "slack", slack_url)
    _, secret = channels.add_webhook(state, "hook", "https://siem.example.com/in")
    with state.session() as session:
        for row in session.scalars(select(NotificationChannel)):
            assert "XXXXXXXX" not in row.secret_ciphertext + row.settings
            assert secret not in row.secret_ciphertext + row.settings
    assert [c.settings["host"] for c in channels.list_channels(state)] == [
        "siem.example.com",
        "hooks.slack.com",
    ]


def test_secrets_encrypted_under_another_key_fail_the_delivery_with_one_sentence(
    state: StateDB, webhook: HttpReceiver
) -> None:
    channels.add_webhook(state, "siem", webhook.url, SECRET)
    with state.session() as session:
        row = session.scalars(select(NotificationChannel)).one()
        row.secret_ciphertext = Fernet(Fernet.generate_key()).encrypt(b"{}").decode()
    enqueue(state, make_alert(), ["siem"], NOW)
    assert deliver_due(state, NOW).failed == 1
    [row] = deliveries(state)
    assert row.status == "failed"
    assert row.last_error == (
        "Channel siem: its secrets were encrypted with another secret key; restore that key, or "
        "remove the channel and add it again."
    )
    assert webhook.requests == []


def test_a_disabled_channel_waits(state: StateDB, webhook: HttpReceiver) -> None:
    channels.add_webhook(state, "siem", webhook.url, SECRET)
    enqueue(state, make_alert(), ["siem"], NOW)
    channels.set_enabled(state, "siem", False)
    assert deliver_due(state, NOW).sent == 0
    channels.set_enabled(state, "siem", True)
    assert deliver_due(state, NOW + timedelta(seconds=1)).sent == 1
    assert len(webhook.requests) == 1
