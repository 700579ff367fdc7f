"""Notification channels: where alerts go, and how one alert is sent to one of them.

Three kinds:

- `webhook`: POST of the alert payload (JSON, documented in docs/detections.md) with
  `X-Kandji-Bridge-Signature: sha256=<hex HMAC-SHA256 of the body under the channel's secret>`
  and `Idempotency-Key: <alert id>`; any 2xx is accepted.
- `slack`: a Slack incoming webhook; the alert becomes Slack's `text` and `blocks`, the last one a
  context block `idempotency key <alert id>` (incoming webhooks take no header for it). Slack
  answers 200 `ok`, or an error word (`invalid_token`, `no_service`, `channel_is_archived`, ...).
- `email`: SMTP with STARTTLS (never plain text), optionally signed in; the Message-ID carries the
  alert id, so a mail system can drop a repeat.

What may be shown (URL-less settings: an SMTP host, the recipients) is kept as JSON; what may
not (a webhook's secret, a Slack webhook URL, which is itself the credential, SMTP credentials)
is encrypted at rest with token_vault, as Kandji tokens are. A send that fails raises
DeliveryFailed with one sentence naming the channel and what to do, and whether trying again
later can help; no URL, secret or server reply that could hold one is ever in it.
"""

import hashlib
import hmac
import json
import secrets
import smtplib
import socket
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from kandji_bridge.config import Settings
from kandji_bridge.db import StateDB
from kandji_bridge.db.models import NotificationChannel
from kandji_bridge.errors import BridgeError, ConfigError
from kandji_bridge.token_vault import decrypt_token, encrypt_token

KINDS = ("webhook", "slack", "email")
SIGNATURE_HEADER = "X-Kandji-Bridge-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SEND_SECONDS = 15.0  # the longest one send may take (connect, TLS, body, answer)
MAX_NAME = 64
# The hosts a plain-http channel may point at: a receiver on this machine (alerts stay local).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# HTTP answers that trying again can change: a timeout, a conflict, too early, too many requests.
_RETRYABLE_4XX = frozenset({408, 409, 425, 429})


class ChannelError(BridgeError):
    """A channel that cannot be added or used as given; the sentence says what to do."""


class DeliveryFailed(Exception):
    """One send did not reach the receiver, or the receiver refused it.

    `sentence` names the channel and what to do; `permanent` when trying again cannot help
    until someone changes the channel (a refused credential, a wrong address).
    """

    def __init__(self, sentence: str, *, permanent: bool) -> None:
        super().__init__(sentence)
        self.sentence = sentence
        self.permanent = permanent


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    kind: str
    settings: Mapping[str, Any]
    enabled: bool = True


@dataclass(frozen=True)
class EmailServer:
    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""  # a PEM bundle to trust instead of the system's (a private CA)


def add_webhook(
    state: StateDB, name: str, url: str, secret: str | None = None
) -> tuple[Channel, str]:
    """A webhook channel; returns it and its signing secret (made here unless given)."""
    _check_url(name, url, "webhook")
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 16:
        raise ChannelError(
            f"Channel {name}: the signing secret is too short; use at least 16 characters."
        )
    return _add(
        state, name, "webhook", {"host": _host(url)}, {"url": url, "secret": secret}
    ), secret


def add_slack(state: StateDB, name: str, webhook_url: str) -> Channel:
    """A Slack incoming-webhook channel (https://hooks.slack.com/services/...)."""
    _check_url(name, webhook_url, "Slack webhook")
    return _add(state, name, "slack", {"host": _host(webhook_url)}, {"url": webhook_url})


def add_email(state: StateDB, name: str, server: EmailServer) -> Channel:
    """An email channel: SMTP with STARTTLS to `server.host:port`, from `sender` to recipients."""
    if not server.host or not 0 < server.port < 65536:
        raise ChannelError(
            f"Channel {name}: give the SMTP server as a host name and a port (587 for STARTTLS)."
        )
    addresses = [server.sender, *server.recipients]
    if not server.recipients or not all("@" in a and " " not in a for a in addresses):
        raise ChannelError(
            f"Channel {name}: give a sender and at least one recipient as email addresses."
        )
    if bool(server.username) != bool(server.password):
        raise ChannelError(f"Channel {name}: give both the SMTP username and password, or neither.")
    if server.ca_file:
        _check_ca_file(name, server.ca_file)
    shown = {
        "host": server.host,
        "port": server.port,
        "sender": server.sender,
        "recipients": list(server.recipients),
        "ca_file": server.ca_file,
    }
    hidden = {"username": server.username, "password": server.password}
    return _add(state, name, "email", shown, hidden)


def get_channel(state: StateDB, name: str) -> Channel:
    with state.session() as session:
        row = session.scalars(
            select(NotificationChannel).where(NotificationChannel.name == name)
        ).one_or_none()
        if row is None:
            raise ChannelError(f"There is no notification channel {name}; add it first.")
        return channel_from_row(row)


def list_channels(state: StateDB) -> list[Channel]:
    with state.session() as session:
        rows = session.scalars(select(NotificationChannel).order_by(NotificationChannel.name))
        return [channel_from_row(row) for row in rows]


def remove_channel(state: StateDB, name: str) -> None:
    """Remove a channel and its deliveries still in the outbox."""
    with state.session() as session:
        row = session.scalars(
            select(NotificationChannel).where(NotificationChannel.name == name)
        ).one_or_none()
        if row is None:
            raise ChannelError(f"There is no notification channel {name}.")
        session.delete(row)


def set_enabled(state: StateDB, name: str, enabled: bool) -> None:
    with state.session() as session:
        row = session.scalars(
            select(NotificationChannel).where(NotificationChannel.name == name)
        ).one_or_none()
        if row is None:
            raise ChannelError(f"There is no notification channel {name}.")
        row.enabled = enabled


def channel_secrets(settings: Settings, row: NotificationChannel) -> dict[str, str]:
    """The channel's decrypted secrets; ChannelError when they were encrypted under another key."""
    try:
        return json.loads(decrypt_token(settings, row.secret_ciphertext))
    except ConfigError:
        raise ChannelError(
            f"Channel {row.name}: its secrets were encrypted with another secret key; restore "
            "that key, or remove the channel and add it again."
        ) from None


def send(channel: Channel, hidden: Mapping[str, str], payload: str) -> None:
    """Send one alert payload (the outbox's JSON text) to one channel; DeliveryFailed if not
    accepted."""
    if channel.kind == "webhook":
        body = payload.encode()
        signature = hmac.new(hidden["secret"].encode(), body, hashlib.sha256).hexdigest()
        key = json.loads(payload)["idempotencyKey"]
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: f"sha256={signature}",
            IDEMPOTENCY_HEADER: key,
        }
        _post(channel, hidden["url"], body, headers, "the webhook")
    elif channel.kind == "slack":
        body = json.dumps(slack_message(json.loads(payload))).encode()
        _post(channel, hidden["url"], body, {"Content-Type": "application/json"}, "Slack")
    elif channel.kind == "email":
        server = EmailServer(
            host=channel.settings["host"],
            port=int(channel.settings["port"]),
            sender=channel.settings["sender"],
            recipients=channel.settings["recipients"],
            username=hidden.get("username", ""),
            password=hidden.get("password", ""),
            ca_file=channel.settings.get("ca_file", ""),
        )
        _send_email(channel, server, json.loads(payload))
    else:
        raise DeliveryFailed(
            f"Channel {channel.name} is of an unknown kind {channel.kind!r}; remove it and add it "
            "again.",
            permanent=True,
        )


def slack_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Slack's `text` (the notification line) and `blocks` for an alert payload."""
    alert = payload["alert"]
    headline = (
        f"{alert['severity']} alert: {alert['displayName']} "
        f"({alert['matchCount']} match{'es' if alert['matchCount'] != 1 else ''})"
    )
    window = f"{alert['windowFrom']} to {alert['windowTo']}"
    lines = [_match_line(match) for match in alert["matches"][:10]]
    more = alert["matchCount"] - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return {
        "text": headline,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": headline[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _slack_escape(alert["description"])},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*Rule*\n{_slack_escape(alert['detection'])}"},
                    {"type": "mrkdwn", "text": f"*Risk score*\n{alert['riskScore']}"},
                    {
                        "type": "mrkdwn",
                        "text": f"*Window (receivedAt, UTC)*\n{window}",
                    },
                ],
            },
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _slack_escape("\n".join(lines)) or "-"},
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"idempotency key {payload['idempotencyKey']}",
                    }
                ],
            },
        ],
    }


def email_message(server: EmailServer, payload: Mapping[str, Any]) -> EmailMessage:
    alert = payload["alert"]
    message = EmailMessage()
    message["Subject"] = (
        f"[kandji-bridge] {alert['severity']}: {alert['displayName']} ({alert['matchCount']})"
    )
    message["From"] = server.sender
    message["To"] = ", ".join(server.recipients)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{payload['idempotencyKey']}@kandji-bridge>"
    message[IDEMPOTENCY_HEADER] = payload["idempotencyKey"]
    lines = [
        alert["description"],
        "",
        f"Rule: {alert['detection']} (risk score {alert['riskScore']})",
        f"Window (receivedAt, UTC): {alert['windowFrom']} to {alert['windowTo']}",
        f"Matches: {alert['matchCount']}",
        "",
        *(_match_line(match) for match in alert["matches"]),
        "",
        f"Alert {alert['id']}",
    ]
    message.set_content("\n".join(lines))
    return message


def _post(channel: Channel, url: str, body: bytes, headers: dict[str, str], what: str) -> None:
    name = channel.name
    try:
        with httpx.Client(timeout=SEND_SECONDS, follow_redirects=False) as client:
            response = client.post(
                url, content=body, headers={"User-Agent": "kandji-bridge", **headers}
            )
    except httpx.TimeoutException:
        raise DeliveryFailed(
            f"Channel {name}: {what} did not answer within {SEND_SECONDS:g} s; check that the "
            "receiver is up and answers quickly.",
            permanent=False,
        ) from None
    except httpx.HTTPError:
        raise DeliveryFailed(
            f"Channel {name}: cannot reach {what} at {_host(url)} (connection failed); check "
            "that the receiver is up.",
            permanent=False,
        ) from None
    status = response.status_code
    if 200 <= status < 300:
        return
    if channel.kind == "slack":
        word = response.text.strip()[:60] if response.text.isprintable() else ""
        said = f", {word}" if word.replace("_", "").isalnum() else ""
        if status in (403, 404, 410):
            raise DeliveryFailed(
                f"Channel {name}: Slack refused the message (HTTP {status}{said}); the webhook was "
                "revoked or its Slack channel removed: make a new incoming webhook in Slack and "
                "add the channel again.",
                permanent=True,
            )
        if status < 500 and status not in _RETRYABLE_4XX:
            raise DeliveryFailed(
                f"Channel {name}: Slack refused the message (HTTP {status}{said}); check that the "
                "channel's URL is a Slack incoming webhook (https://hooks.slack.com/services/...).",
                permanent=True,
            )
    elif 300 <= status < 400:
        raise DeliveryFailed(
            f"Channel {name}: {what} answered with a redirect (HTTP {status}); set the channel's "
            "URL to the address it redirects to.",
            permanent=True,
        )
    elif status < 500 and status not in _RETRYABLE_4XX:
        raise DeliveryFailed(
            f"Channel {name}: {what} refused the alert (HTTP {status}); check the channel's URL "
            "and that the receiver has its secret (this alert is not retried).",
            permanent=True,
        )
    raise DeliveryFailed(
        f"Channel {name}: {what} answered HTTP {status}; check the receiver's logs.",
        permanent=False,
    )


def _send_email(channel: Channel, server: EmailServer, payload: Mapping[str, Any]) -> None:
    name = channel.name
    where = f"{server.host}:{server.port}"
    try:
        context = ssl.create_default_context(cafile=server.ca_file or None)
    except (OSError, ssl.SSLError):
        raise DeliveryFailed(
            f"Channel {name}: cannot read the CA file {server.ca_file}; give a PEM bundle.",
            permanent=True,
        ) from None
    try:
        with smtplib.SMTP(server.host, server.port, timeout=SEND_SECONDS) as smtp:
            smtp.ehlo()
            if not smtp.has_extn("starttls"):
                raise DeliveryFailed(
                    f"Channel {name}: the SMTP server {where} does not offer STARTTLS, and alerts "
                    "are never sent unencrypted; use its submission port (587) or another server.",
                    permanent=True,
                )
            smtp.starttls(context=context)
            smtp.ehlo()
            if server.username:
                smtp.login(server.username, server.password)
            smtp.send_message(email_message(server, payload))
    except DeliveryFailed:
        raise
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryFailed(
            f"Channel {name}: the SMTP server {where} refused the username or password "
            f"({exc.smtp_code}); update the channel's credentials.",
            permanent=True,
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise DeliveryFailed(
            f"Channel {name}: the SMTP server {where} does not support signing in; remove the "
            "channel's credentials or use another server.",
            permanent=True,
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _ in exc.recipients.values()})
        refused = ", ".join(sorted(exc.recipients))
        raise DeliveryFailed(
            f"Channel {name}: the SMTP server {where} refused the recipient(s) {refused} "
            f"({', '.join(map(str, codes))}); fix the channel's addresses.",
            permanent=all(code >= 500 for code in codes),
        ) from None
    except smtplib.SMTPSenderRefused as exc:
        raise DeliveryFailed(
            f"Channel {name}: the SMTP server {where} refused the sender {server.sender} "
            f"({exc.smtp_code}); use a sender address the server accepts for this account.",
            permanent=exc.smtp_code >= 500,
        ) from None
    except smtplib.SMTPResponseException as exc:
        permanent = exc.smtp_code >= 500
        raise DeliveryFailed(
            f"Channel {name}: the SMTP server {where} refused the message ({exc.smtp_code})"
            + (
                "; check the channel's server and addresses."
                if permanent
                else "; check the server."
            ),
            permanent=permanent,
        ) from None
    except ssl.SSLCertVerificationError:
        raise DeliveryFailed(
            f"Channel {name}: the SMTP server {where} presented a certificate that is not trusted; "
            "give the channel the CA file that signed it.",
            permanent=True,
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = (
            "timed out" if isinstance(exc, socket.timeout | TimeoutError) else "connection failed"
        )
        raise DeliveryFailed(
            f"Channel {name}: cannot reach the SMTP server {where} ({reason}); check that the "
            "server is up.",
            permanent=False,
        ) from None


def _add(
    state: StateDB, name: str, kind: str, shown: dict[str, Any], hidden: dict[str, str]
) -> Channel:
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ChannelError(
            f"A channel name must be 1 to {MAX_NAME} printable characters; got {name[:80]!r}."
        )
    with state.session() as session:
        taken = session.scalars(
            select(NotificationChannel.id).where(NotificationChannel.name == name)
        ).first()
        if taken is not None:
            raise ChannelError(f"A notification channel named {name} exists; choose another name.")
        row = NotificationChannel(
            name=name,
            kind=kind,
            settings=json.dumps(shown),
            secret_ciphertext=encrypt_token(state.settings, json.dumps(hidden)),
        )
        session.add(row)
        session.flush()
        return channel_from_row(row)


def channel_from_row(row: NotificationChannel) -> Channel:
    return Channel(row.id, row.name, row.kind, json.loads(row.settings), row.enabled)


def _check_url(name: str, url: str, what: str) -> None:
    """https, or plain http to this machine only: an alert (and a Slack URL, which is itself the
    credential) never crosses a network in clear."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme not in ("https", "http"):
        raise ChannelError(
            f"Channel {name}: the {what} URL must start with https:// and name a host."
        )
    if parts.scheme == "http" and host.lower() not in LOCAL_HOSTS:
        raise ChannelError(
            f"Channel {name}: the {what} URL must start with https:// (plain http:// only to "
            f"localhost, 127.0.0.1 or ::1, for a receiver on this machine); got http://{host}."
        )


def _check_ca_file(name: str, ca_file: str) -> None:
    """The CA bundle must load now, not fail the first alert at 3 a.m."""
    try:
        ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError:  # an OSError too: before it
        raise ChannelError(
            f"Channel {name}: the CA file {ca_file} holds no PEM certificate; give the path of "
            "a PEM bundle (-----BEGIN CERTIFICATE-----), or none to trust the system's CAs."
        ) from None
    except OSError as exc:
        reason = (exc.strerror or "cannot be read").lower()
        raise ChannelError(
            f"Channel {name}: the CA file {ca_file} cannot be read ({reason}); give the path of a "
            "PEM bundle readable on this server, or none to trust the system's CAs."
        ) from None


def _host(url: str) -> str:
    """The host (and port) of a URL: what may be shown of it."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def _match_line(match: Mapping[str, Any]) -> str:
    words = [str(match.get(key)) for key in ("eventTime", "eventName") if match.get(key)]
    actor = match.get("actorId") or ""
    target = match.get("targetId") or ""
    if actor:
        words.append(f"by {match.get('actorType') or 'actor'} {actor}")
    if target:
        words.append(f"on {target}")
    return " ".join(words) or json.dumps(match)[:200]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
