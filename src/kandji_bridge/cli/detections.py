"""`detections`, `alerts` and `channel`: rules over the audit logs, what they found, where to."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from kandji_bridge.cli.common import (
    ListFormat,
    app_context,
    err,
    not_blank,
    out,
    print_json,
    print_table,
    running_service,
)
from kandji_bridge.config import Settings
from kandji_bridge.errors import BridgeError, UsageError

if TYPE_CHECKING:
    from kandji_bridge.logs.store import LogStore
    from kandji_bridge.operations import alerts as alert_ops
    from kandji_bridge.operations import detections as ops

detections_app = typer.Typer(help="Detection rules over the audit logs.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alerts the enabled detections raised.", no_args_is_help=True)
channel_app = typer.Typer(help="Where alerts are sent.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(callback=not_blank, help="The rule's name.")]


FormatOption = Annotated[ListFormat, typer.Option("--format", help="Output format.")]


@contextmanager
def _store(settings: Settings) -> "Iterator[LogStore]":
    from kandji_bridge.cli.logs import open_store

    store = open_store(settings)
    try:
        yield store
    finally:
        store.close()


# -- detections ---------------------------------------------------------------------------------


@detections_app.command("list")
def list_command(ctx: typer.Context, output: FormatOption = ListFormat.table) -> None:
    """List the rules (the built-in pack and those imported), enabled or not, with the last
    run's error of each."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import detections as ops
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    service = running_service(settings)
    if service is not None:
        found, problems = advert.list_detections(service)
        rules = [{key: r[key] for key in _RULE_KEYS} for r in found]
    else:
        state = open_state(settings)
        with _store(settings) as store:
            listed = ops.list_rules(state, store)
            statuses = ops.rule_statuses(settings, state, store, listed)
        rules = [_rule_dict(status) for status in statuses]
        problems = [p.sentence for p in listed.problems]
    for problem in problems:
        err.print(f"[yellow]Warning:[/yellow] {escape(problem)}")
    if output is ListFormat.json:
        print_json(rules)
        return
    table = Table("name", "severity", "schedule", "origin", "enabled", "channels")
    for r in rules:
        table.add_row(
            r["name"],
            r["severity"],
            r["schedule"],
            r["origin"],
            "yes" if r["enabled"] else "no",
            ", ".join(r["channels"]),
        )
    print_table(table)
    for r in rules:
        if r["last_error"]:
            err.print(f"[red]Error:[/red] {escape(r['last_error'])}")
    err.print(_signal_age_note(settings))


_RULE_KEYS = (
    "name",
    "display_name",
    "severity",
    "schedule",
    "origin",
    "enabled",
    "channels",
    "last_error",
)


def _rule_dict(status: "ops.RuleStatus") -> dict[str, Any]:
    """A rule as `detections list --format json` prints it (the API's names)."""
    rule = status.rule
    return {
        "name": rule.name,
        "display_name": rule.detection.display_name,
        "severity": rule.detection.severity,
        "schedule": rule.detection.schedule,
        "origin": rule.origin,
        "enabled": rule.enabled,
        "channels": list(rule.channels),
        "last_error": status.last_error,
    }


def _signal_age_note(settings: Settings) -> str:
    from kandji_bridge.detections.limits import ENV_DETECTION_SECONDS, ENV_SIGNAL_AGE_HOURS

    limits = settings.detection_limits
    return (
        f"Matches on events older than {limits.signal_age_text} are stored as signals and not "
        f"sent ({ENV_SIGNAL_AGE_HOURS}); a rule may run {limits.run_seconds} s "
        f"({ENV_DETECTION_SECONDS})."
    )


@detections_app.command("validate")
def validate_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A folder of NAME.yaml (+ NAME.sql) or Sigma.")],
) -> None:
    """Check every rule of a folder; one sentence per problem, exit 1 if any."""
    from kandji_bridge.operations import detections as ops
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    files = ops.read_rule_files(folder)
    service = running_service(settings)
    if service is not None:
        checked = advert.validate_rules(service, _sent(files))
        names, problems = checked["rules"], checked["problems"]
    else:
        with _store(settings) as store:
            found = ops.validate_files(files, store)
        names = [d.name for d in found.detections]
        problems = [p.sentence for p in found.problems]
    for name in names:
        out.print(f"ok    {escape(name)}")
    if problems:
        for problem in problems:
            err.print(f"[red]Error:[/red] {escape(problem)}")
        raise typer.Exit(1)
    if not names:
        raise BridgeError(f"The folder {folder} holds no rules (NAME.yaml).")


@detections_app.command("test")
def test_command(ctx: typer.Context, name: NameArg) -> None:
    """Run a rule's fixtures (NAME.fixtures.yaml) on a scratch store; exit 1 if one fails."""
    from kandji_bridge.operations import detections as ops

    results = ops.test_rule(app_context(ctx).settings(), name)
    for result in results:
        mark = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
        out.print(f"{mark}  {escape(result.sentence)}")
    failed = sum(not r.passed for r in results)
    if failed:
        raise BridgeError(f"{failed} of {len(results)} fixture case(s) of {name} failed.")


@detections_app.command("run")
def run_command(
    ctx: typer.Context,
    name: NameArg,
    start: Annotated[str, typer.Option("--from", help="Start (YYYY-MM-DD or ISO 8601, UTC).")],
    end: Annotated[str | None, typer.Option("--to", help="End, excluded (default: now).")] = None,
    output: FormatOption = ListFormat.table,
) -> None:
    """Run a rule over a period of receivedAt now and print its matches; nothing is sent."""
    from kandji_bridge.cli.logs import _moment
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import detections as ops
    from kandji_bridge.service import advert

    window_from = _moment(start, "--from", end_of_day=False)
    window_to = _moment(end, "--to", end_of_day=True)
    if window_from >= window_to:
        raise UsageError(f"--from {start} is not before --to {end or 'now'}.")
    settings = app_context(ctx).settings()
    service = running_service(settings)
    if service is not None:
        found = advert.run_detection(service, name, window_from, window_to)
        columns, rows, truncated = found["columns"], found["rows"], found["truncated"]
    else:
        state = open_state(settings)
        with _store(settings) as store:
            matches = ops.run_rule(state, store, name, window_from, window_to)
        columns, rows, truncated = matches.columns, matches.rows, matches.truncated
    if output is ListFormat.json:
        print_json(rows)
    else:
        shown = [c for c in columns if c not in _BULKY][:8]
        table = Table(*shown)
        for row in rows:
            table.add_row(*(escape(str(row.get(c, ""))) for c in shown))
        print_table(table)
    more = " (more than that; narrow the period)" if truncated else ""
    err.print(f"{len(rows):,} matches{more}; nothing was sent.")


_BULKY = {"rawLog", "newState", "metadata", "enrichments", "tags", "actor", "resources"}


@detections_app.command("import")
def import_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A folder of NAME.yaml (+ NAME.sql) or Sigma.")],
) -> None:
    """Copy a folder's rules into the home (all or nothing); enable them to run them."""
    from kandji_bridge.operations import detections as ops
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    files = ops.read_rule_files(folder)
    service = running_service(settings)
    if service is not None:
        done = advert.import_rules(service, _sent(files), str(folder))
        imported, replaced = done["imported"], done["replaced"]
    else:
        with _store(settings) as store:
            report = ops.import_files(settings, store, files, str(folder))
        imported, replaced = report.imported, report.replaced
    for name in imported:
        out.print(f"Imported {escape(name)}.")
    for name in replaced:
        out.print(f"Replaced {escape(name)}.")


def _sent(files: "list[ops.RuleFile]") -> list[dict[str, str]]:
    """A folder's files as the service receives them: the service cannot read this machine's."""
    return [{"name": f.name, "text": f.text} for f in files]


@detections_app.command("enable")
def enable_command(
    ctx: typer.Context,
    name: NameArg,
    notify: Annotated[
        list[str] | None,
        typer.Option(help="A channel to send its alerts to (repeat for more)."),
    ] = None,
) -> None:
    """Run a rule on its schedule in `serve`, sending its alerts to its channels."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import alerts as alert_ops
    from kandji_bridge.operations import detections as ops
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    service = running_service(settings)
    if service is not None:
        now = advert.switch_detection(service, name, True, tuple(notify or ()))
        schedule, channels = now["schedule"], now["channels"]
    else:
        state = open_state(settings)
        if notify:
            alert_ops.check_channels(state, notify)
        with _store(settings) as store:
            rule = ops.set_enabled(state, store, name, True, tuple(notify or ()))
        schedule, channels = rule.detection.schedule, list(rule.channels)
    where = f", alerts to {', '.join(channels)}" if channels else ", signals only"
    out.print(f"Enabled {escape(name)} ({escape(schedule)}{escape(where)}).")


@detections_app.command("disable")
def disable_command(ctx: typer.Context, name: NameArg) -> None:
    """Stop running a rule (what it found stays)."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import detections as ops
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    service = running_service(settings)
    if service is not None:
        advert.switch_detection(service, name, False)
    else:
        state = open_state(settings)
        with _store(settings) as store:
            ops.set_enabled(state, store, name, False)
    out.print(f"Disabled {escape(name)}.")


# -- alerts -------------------------------------------------------------------------------------


@alerts_app.command("list")
def alerts_list(
    ctx: typer.Context,
    detection: Annotated[str | None, typer.Option(help="Only this rule's alerts.")] = None,
    severity: Annotated[str | None, typer.Option(help="Low, Medium, High or Critical.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    output: FormatOption = ListFormat.table,
) -> None:
    """The newest alerts, with the sources and devices of their matched events."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import alerts as alert_ops
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    service = running_service(settings)
    if service is not None:
        keys = (*_ALERT_KEYS, "sources", "devices")
        listed = advert.list_alerts(service, detection, severity, limit)
        moments = ("window_from", "window_to")  # printed as the store's, whatever the API's form
        found = [
            {key: a[key] for key in keys}
            | {key: datetime.fromisoformat(a[key]).isoformat() for key in moments}
            for a in listed
        ]
    else:
        state = open_state(settings)
        with _store(settings) as store:
            rows = alert_ops.browse_alerts(state, store, detection, severity, limit=limit)
        found = [_alert_json(row) for row in rows]
    if output is ListFormat.json:
        print_json(found)
        return
    if not found:
        err.print("No alerts yet.")
        return
    table = Table("window (UTC)", "detection", "severity", "matches", "id")
    for a in map(_alert_dict, found):
        table.add_row(
            f"{a['window_from']:%Y-%m-%d %H:%M} to {a['window_to']:%H:%M}",
            a["detection"],
            a["severity"],
            str(a["matches"]),
            a["id"],
        )
    print_table(table)


_ALERT_KEYS = (
    "id",
    "detection",
    "severity",
    "risk_score",
    "window_from",
    "window_to",
    "matches",
    "matched_ids",
)


def _alert_dict(alert: dict[str, Any]) -> dict[str, Any]:
    """An alert as `alerts list` shows it in a table: its moments as datetimes, from the JSON's
    ISO text."""
    found = {key: alert[key] for key in _ALERT_KEYS}
    for key in ("window_from", "window_to"):
        if not isinstance(found[key], datetime):
            found[key] = datetime.fromisoformat(found[key])
    return found


def _alert_json(row: "alert_ops.AlertRow") -> dict[str, Any]:
    a = row.alert
    return {
        "id": a.id,
        "detection": a.detection,
        "severity": a.severity,
        "risk_score": a.risk_score,
        "window_from": a.window_from.isoformat(),
        "window_to": a.window_to.isoformat(),
        "matches": a.matches,
        "matched_ids": a.matched_ids,
        "sources": [{"id": s.id, "name": s.name} for s in row.sources],
        "devices": [
            {
                "device_id": d.device_id,
                "name": d.name,
                "serial": d.serial,
                "record_url": d.record.url if d.record else None,
            }
            for d in row.devices
        ],
    }


# -- channel ------------------------------------------------------------------------------------


class ChannelKind(StrEnum):
    webhook = "webhook"
    slack = "slack"
    email = "email"


@channel_app.command("add")
def channel_add(
    ctx: typer.Context,
    kind: Annotated[ChannelKind, typer.Argument(help="webhook, slack or email.")],
    name: Annotated[str, typer.Argument(callback=not_blank, help="A name for the channel.")],
    url: Annotated[str | None, typer.Option(help="The webhook's or Slack webhook's URL.")] = None,
    smtp_host: Annotated[str | None, typer.Option(help="Email: the SMTP server.")] = None,
    smtp_port: Annotated[int, typer.Option(help="Email: its port (STARTTLS).")] = 587,
    sender: Annotated[str | None, typer.Option("--from", help="Email: the sender.")] = None,
    to: Annotated[list[str] | None, typer.Option(help="Email: a recipient (repeat).")] = None,
    smtp_username: Annotated[str | None, typer.Option(help="Email: SMTP user name.")] = None,
    smtp_password_env: Annotated[
        str | None, typer.Option(help="Email: read the SMTP password from this variable.")
    ] = None,
    ca_file: Annotated[
        str | None,
        typer.Option(help="Email: a PEM bundle of the CA that signed the server's certificate."),
    ] = None,
) -> None:
    """Add a notification channel; a webhook's signing secret is printed once."""
    from kandji_bridge.db import open_state
    from kandji_bridge.detections.channels import EmailServer
    from kandji_bridge.operations import alerts as alert_ops

    state = open_state(app_context(ctx).settings())
    email = None
    if kind is ChannelKind.email:
        if not smtp_host or not sender or not to:
            raise UsageError("An email channel needs --smtp-host, --from and at least one --to.")
        email = EmailServer(
            smtp_host,
            smtp_port,
            sender,
            tuple(to),
            smtp_username or "",
            os.environ.get(smtp_password_env, "") if smtp_password_env else "",
            ca_file or "",
        )
    elif not url:
        raise UsageError(f"A {kind.value} channel needs --url.")
    channel, secret = alert_ops.add_channel(state, kind.value, name, url=url or "", email=email)
    out.print(f"Added {kind.value} channel {escape(channel.name)}.")
    if secret:
        out.print(
            f"Its signing secret (shown once; check X-Kandji-Bridge-Signature with it): {secret}"
        )


@channel_app.command("list")
def channel_list(ctx: typer.Context, output: FormatOption = ListFormat.table) -> None:
    """List the channels (never their secrets)."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import alerts as alert_ops

    found = alert_ops.list_channels(open_state(app_context(ctx).settings()))
    if output is ListFormat.json:
        print_json(
            [
                {"name": c.name, "kind": c.kind, "enabled": c.enabled, **dict(c.settings)}
                for c in found
            ]
        )
        return
    if not found:
        err.print("No channels yet; add one with `kandji-bridge channel add`.")
        return
    table = Table("name", "kind", "where", "enabled")
    for c in found:
        where = c.settings.get("host", "")
        table.add_row(c.name, c.kind, str(where), "yes" if c.enabled else "no")
    print_table(table)


@channel_app.command("test")
def channel_test(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The channel.")],
) -> None:
    """Send a test alert to a channel now."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import alerts as alert_ops

    alert_ops.test_channel(open_state(app_context(ctx).settings()), name)
    out.print(f"Sent a test alert to {escape(name)}.")


@channel_app.command("remove")
def channel_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The channel.")],
) -> None:
    """Remove a channel and the alerts waiting for it."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations import alerts as alert_ops

    alert_ops.remove_channel(open_state(app_context(ctx).settings()), name)
    out.print(f"Removed channel {escape(name)}.")
