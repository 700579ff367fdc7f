"""The Detections page (each rule: severity, schedule, last run, counts, its switch, its YAML and
SQL, a run over a chosen period), the Alerts page, and the notification channels in Settings."""

from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from kandji_bridge.detections.channels import EmailServer
from kandji_bridge.errors import BridgeError
from kandji_bridge.operations import alerts as alert_ops
from kandji_bridge.operations import detections as ops
from kandji_bridge.operations.explorer import source_names
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.detections.schemas import SEVERITIES
from kandji_bridge.web.templating import render

pages = APIRouter(include_in_schema=False)

FormText = Annotated[str, Form()]
LOCAL = "%Y-%m-%dT%H:%M"
SHOWN_MATCHES = 200
SHOWN_COLUMNS = 8
_BULKY = {"rawLog", "newState", "metadata", "enrichments", "tags", "actor", "resources"}


@pages.get("/detections")
def detections_page(request: Request, principal: CurrentUser, changed: str = "") -> Response:
    runtime = runtime_of(request)
    statuses = ops.rule_statuses(runtime.settings, runtime.state, runtime.store)
    message = ""
    found = next((s for s in statuses if s.rule.name == changed), None)
    if found is not None:
        message = f"{found.rule.name} is {'enabled' if found.rule.enabled else 'disabled'}."
    context = {
        "section": "detections",
        "statuses": statuses,
        "message": message,
        "scheduler_running": runtime.jobs.background,
        "limits": runtime.settings.detection_limits,
    }
    return render(request, "detections/list.html", context)


@pages.post("/detections/{name}/enable")
def enable_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    ops.set_enabled(runtime.state, runtime.store, name, True)
    return RedirectResponse(f"/detections?changed={quote(name)}", status_code=303)


@pages.post("/detections/{name}/disable")
def disable_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    ops.set_enabled(runtime.state, runtime.store, name, False)
    return RedirectResponse(f"/detections?changed={quote(name)}", status_code=303)


@pages.get("/detections/{name}")
def rule_page(
    request: Request,
    principal: CurrentUser,
    name: str,
    start: str = "",
    end: str = "",
    fixtures: str = "",
) -> Response:
    runtime = runtime_of(request)
    rule = ops.get_rule(runtime.state, runtime.store, name)
    cases, fixtures_error = [], ""
    if fixtures:
        try:
            cases = ops.test_rule(runtime.settings, name, holds_store=True)
        except BridgeError as exc:
            fixtures_error = exc.message
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    values = {
        "start": start or (now - timedelta(hours=24)).strftime(LOCAL),
        "end": end or now.strftime(LOCAL),
    }
    matches, error = None, ""
    if start:
        try:
            window = (_local(values["start"], "From"), _local(values["end"], "To"))
            matches = ops.run_rule(runtime.state, runtime.store, name, *window)
        except BridgeError as exc:
            error = exc.message
    columns = [c for c in (matches.columns if matches else []) if c not in _BULKY][:SHOWN_COLUMNS]
    try:
        yaml_text = rule.detection.path.read_text(encoding="utf-8")
    except OSError:
        yaml_text = ""
    context = {
        "section": "detections",
        "rule": rule,
        "yaml_text": yaml_text,
        "values": values,
        "matches": matches,
        "rows": matches.rows[:SHOWN_MATCHES] if matches else [],
        "columns": columns,
        "error": error,
        "ran_fixtures": bool(fixtures),
        "cases": cases,
        "fixtures_error": fixtures_error,
    }
    return render(request, "detections/rule.html", context, status_code=400 if error else 200)


@pages.get("/alerts")
def alerts_page(
    request: Request,
    principal: CurrentUser,
    severity: str = "",
    detection: str = "",
    source: str = "",
) -> Response:
    runtime = runtime_of(request)
    found = alert_ops.browse_alerts(
        runtime.state, runtime.store, detection or None, severity or None, source or None
    )
    names = sorted(r.name for r in ops.list_rules(runtime.state, runtime.store).rules)
    context = {
        "section": "alerts",
        "alerts": found,
        "severities": SEVERITIES,
        "names": names,
        "sources": source_names(runtime.state),
        "values": {"severity": severity, "detection": detection, "source": source},
    }
    return render(request, "detections/alerts.html", context)


@pages.get("/settings/channels")
def channels_page(
    request: Request, principal: CurrentUser, added: str = "", tested: str = "", removed: str = ""
) -> Response:
    return _channels(request, message=_said(added, tested, removed))


@pages.post("/settings/channels")
def add_channel_page(
    request: Request,
    principal: CurrentUser,
    kind: FormText = "webhook",
    name: FormText = "",
    url: FormText = "",
) -> Response:
    state = runtime_of(request).state
    try:
        channel, secret = alert_ops.add_channel(state, kind, name.strip(), url=url.strip())
    except BridgeError as exc:
        values = {"kind": kind, "name": name, "url": url}
        return _channels(request, error=exc.message, values=values, status_code=400)
    if secret:
        # Shown once, on this page only: the receiver needs it to check the signature.
        return _channels(request, message=f"Added channel {channel.name}.", secret=secret)
    return RedirectResponse(f"/settings/channels?added={quote(channel.name)}", status_code=303)


@pages.post("/settings/channels/email")
def add_email_channel_page(
    request: Request,
    principal: CurrentUser,
    name: FormText = "",
    host: FormText = "",
    port: FormText = "587",
    sender: FormText = "",
    recipients: FormText = "",
    username: FormText = "",
    password: FormText = "",
    ca_file: FormText = "",
) -> Response:
    values = {
        "kind": "email",
        "name": name,
        "host": host,
        "port": port,
        "sender": sender,
        "recipients": recipients,
        "username": username,
        "ca_file": ca_file,
    }  # never the password: a refused form does not show it back
    try:
        if not port.strip().isdigit():
            raise BridgeError(
                f"The SMTP port {port!r} is not a number; give one (587 for STARTTLS)."
            )
        server = EmailServer(
            host.strip(),
            int(port),
            sender.strip(),
            tuple(a for a in recipients.replace(",", " ").split() if a),
            username.strip(),
            password,
            ca_file.strip(),
        )
        channel, _ = alert_ops.add_channel(
            runtime_of(request).state, "email", name.strip(), email=server
        )
    except BridgeError as exc:
        return _channels(request, error=exc.message, values=values, status_code=400)
    return RedirectResponse(f"/settings/channels?added={quote(channel.name)}", status_code=303)


@pages.post("/settings/channels/{name}/remove")
def remove_channel_page(request: Request, principal: CurrentUser, name: str) -> Response:
    try:
        alert_ops.remove_channel(runtime_of(request).state, name)
    except BridgeError as exc:
        return _channels(request, error=exc.message, status_code=400)
    return RedirectResponse(f"/settings/channels?removed={quote(name)}", status_code=303)


@pages.post("/settings/channels/{name}/test")
def test_channel_page(request: Request, principal: CurrentUser, name: str) -> Response:
    try:
        alert_ops.test_channel(runtime_of(request).state, name)
    except BridgeError as exc:
        return _channels(request, error=exc.message, status_code=400)
    return RedirectResponse(f"/settings/channels?tested={quote(name)}", status_code=303)


def _channels(
    request: Request,
    *,
    message: str = "",
    error: str = "",
    secret: str = "",
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "section": "channels",
        "channels": alert_ops.list_channels(runtime_of(request).state),
        "message": message,
        "error": error,
        "secret": secret,
        "values": values or {"kind": "webhook"},
        "limits": runtime_of(request).settings.detection_limits,
    }
    response = render(request, "detections/channels.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


def _said(added: str, tested: str, removed: str = "") -> str:
    if removed:
        return f"Removed channel {removed}."
    if added:
        return f"Added channel {added}."
    if tested:
        return f"Sent a test alert to {tested}."
    return ""


def _local(text: str, label: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), LOCAL).replace(tzinfo=UTC)
    except ValueError:
        raise BridgeError(f"{label} {text!r} is not a date and time; pick one (UTC).") from None
