"""The `kandji-bridge` command line (the contract is docs/CLI.md)."""

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from kandji_bridge import redact
from kandji_bridge.cli.common import (
    Context,
    ListFormat,
    app_context,
    err,
    not_blank,
    out,
    print_json,
    print_table,
    read_token,
    running_service,
)
from kandji_bridge.cli.detections import alerts_app, channel_app, detections_app
from kandji_bridge.cli.inventory import collection_app, inventory_app, mapping_app
from kandji_bridge.cli.logs import logs_app, open_store
from kandji_bridge.cli.users import user_app
from kandji_bridge.config import (
    DEFAULT_RETENTION_DAYS,
    ENV_FORWARDED_ALLOW_IPS,
    parse_forwarded_allow_ips,
)
from kandji_bridge.errors import BridgeError, ConfigError, UsageError

if TYPE_CHECKING:
    from kandji_bridge.operations.verify import VerifyReport

app = typer.Typer(
    help="Kandji audit logs into a security data lake, and Kandji devices into an asset inventory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
source_app = typer.Typer(help="Kandji audit-log sources.", no_args_is_help=True)
app.add_typer(source_app, name="source")
app.add_typer(logs_app, name="logs")
app.add_typer(collection_app, name="collection")
app.add_typer(mapping_app, name="mapping")
app.add_typer(inventory_app, name="inventory")
app.add_typer(user_app, name="user")
app.add_typer(detections_app, name="detections")
app.add_typer(alerts_app, name="alerts")
app.add_typer(channel_app, name="channel")


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(help="Where state lives (default: $KANDJI_BRIDGE_HOME or the user data dir)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    redact.install_log_filter()
    ctx.obj = Context(home=home, debug=debug)


def print_report(report: "VerifyReport") -> None:
    width = max(len(check.name) for check in report.checks)
    for check in report.checks:
        if check.ok:
            status = "[green]ok  [/green]"
        elif check.optional:
            status = "[yellow]opt [/yellow]"
        elif check.ok is None:
            status = "[yellow]skip[/yellow]"
        else:
            status = "[red]FAIL[/red]"
        out.print(f"{status}  {escape(check.name.ljust(width))}  {escape(check.detail)}")


# -- simulate -------------------------------------------------------------------------------


@app.command()
def simulate(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8089,
    devices: Annotated[int, typer.Option(min=0, help="Devices in the tenant.")] = 50,
    events: Annotated[int, typer.Option(min=0, help="Audit events in the history.")] = 2000,
    history_days: Annotated[int, typer.Option(min=1, max=366, help="Days of history.")] = 365,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 1,
    token: Annotated[
        list[str] | None,
        typer.Option(help="VALUE[:PERMS], PERMS a comma list of audit, devices, details."),
    ] = None,
    events_per_minute: Annotated[
        float, typer.Option(min=0, help="Live mode: new audit events per minute.")
    ] = 0,
    rate_per_second: Annotated[
        float, typer.Option(min=0.1, help="Requests allowed a second.")
    ] = 50,
    rate_per_hour: Annotated[float, typer.Option(min=1, help="Requests allowed an hour.")] = 10_000,
    fault_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Fraction of requests that fail on purpose.")
    ] = 0,
) -> None:
    """Serve a simulated Kandji tenant (same seed, same data)."""
    from kandji_bridge.simulator.config import SimulatorConfig, parse_token_option
    from kandji_bridge.simulator.server import serve

    tokens: dict[str, frozenset[str]] = {}
    for value in token or []:
        try:
            name, perms = parse_token_option(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--token") from exc
        tokens[name] = perms
    config = SimulatorConfig(
        devices=devices,
        events=events,
        history_days=history_days,
        seed=seed,
        tokens=tokens,
        events_per_minute=events_per_minute,
        rate_per_second=rate_per_second,
        rate_per_hour=rate_per_hour,
        fault_rate=fault_rate,
    )
    try:
        serve(config, host, port, announce=lambda line: out.print(escape(line)))
    except OSError as exc:
        raise BridgeError(
            f"Cannot listen on {host}:{port} ({exc.strerror}); pick another --port or --host."
        ) from exc


# -- serve ----------------------------------------------------------------------------------


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    forwarded_allow_ips: Annotated[
        str | None,
        typer.Option(
            help="Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed "
            "(comma-separated addresses or networks; default: none, the peer is the client; "
            f"or {ENV_FORWARDED_ALLOW_IPS}).",
        ),
    ] = None,
) -> None:
    """Run the scheduler, the REST API under /api/ and the web UI until SIGTERM or Ctrl-C."""
    from kandji_bridge.service.serve import run_serve

    settings = app_context(ctx).settings()
    if forwarded_allow_ips is not None:
        try:
            proxies = parse_forwarded_allow_ips(forwarded_allow_ips)
        except ConfigError as exc:
            raise typer.BadParameter(exc.message, param_hint="--forwarded-allow-ips") from None
        settings = dataclasses.replace(settings, forwarded_allow_ips=proxies)
    run_serve(settings, host, port)


# -- demo -----------------------------------------------------------------------------------


@app.command()
def demo(
    ctx: typer.Context,
    devices: Annotated[int, typer.Option(min=0, help="Devices in the simulated tenant.")] = 200,
    events: Annotated[int, typer.Option(min=0, help="Audit events in its history.")] = 5000,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to serve on (0: any free port).")
    ] = 8000,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Do not open a browser.")
    ] = False,
) -> None:
    """Everything in one: a simulated tenant as a source and an integration, its logs backfilled,
    its devices imported into a demo collection, and the web UI."""
    from kandji_bridge.cli.demo import run_demo

    run_demo(
        app_context(ctx).settings(),
        devices=devices,
        events=events,
        port=port,
        open_browser=not no_browser,
    )


# -- verify ---------------------------------------------------------------------------------


@app.command("verify")
def verify_command(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(callback=not_blank, help="A source added with `source add`.")
    ] = None,
    url: Annotated[str | None, typer.Option(help="Kandji API URL (or the web-app URL).")] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Read the token from this environment variable.")
    ] = None,
    token_stdin: Annotated[bool, typer.Option(help="Read the token from standard input.")] = False,
) -> None:
    """Check the URL, the token, and each permission both pipelines need."""
    from kandji_bridge.db import open_state
    from kandji_bridge.operations.sources import verify_source, verify_token

    settings = app_context(ctx).settings()
    if name is not None:
        if url or token_env or token_stdin:
            raise UsageError("Give either a source NAME or --url with a token, not both.")

        report = verify_source(settings, open_state(settings), name)
    elif url is None:
        raise UsageError("Give a source NAME, or --url with --token-env VAR or --token-stdin.")
    else:
        report = verify_token(settings, url, read_token(token_env, token_stdin))
    print_report(report)
    if not report.ok:
        raise typer.Exit(1)


# -- source ---------------------------------------------------------------------------------


@source_app.command("add")
def source_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="A name for this source.")],
    url: Annotated[str, typer.Option(help="Kandji API URL (or the web-app URL).")],
    token_env: Annotated[
        str | None, typer.Option(help="Read the token from this environment variable.")
    ] = None,
    token_stdin: Annotated[bool, typer.Option(help="Read the token from standard input.")] = False,
    poll_interval: Annotated[
        int, typer.Option(min=1, help="Seconds between polls for new audit events.")
    ] = 60,
    retention_days: Annotated[
        int, typer.Option(min=1, max=3650, help="Days the log store keeps this source's events.")
    ] = DEFAULT_RETENTION_DAYS,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Save without checking.")] = False,
) -> None:
    """Register a Kandji audit-log source (verified first unless --no-verify)."""

    from kandji_bridge.db import open_state
    from kandji_bridge.operations.sources import (
        add_source,
        blocking_check,
        check_new_source,
        verify_token,
    )

    settings = app_context(ctx).settings()
    token = read_token(token_env, token_stdin)
    state = open_state(settings)
    new, errors = check_new_source(
        settings, state, name, url, token, poll_interval, retention_days, for_web=False
    )
    if new is None:
        raise BridgeError(next(iter(errors.values())))
    if new.api_url.note:
        err.print(escape(new.api_url.note))
    report = None
    if not no_verify:
        report = verify_token(settings, new.api_url.base_url, new.token)
        print_report(report)
        failed = blocking_check(report)
        if failed is not None:
            raise BridgeError(f"Source {new.name} was not saved: {failed.detail}")
        if not report.ok:
            err.print(
                "This source can collect audit logs; grant the missing permissions above "
                "before using it to import devices."
            )
    source = add_source(state, new, report=report)
    out.print(f"Added source {escape(source.name)} ({escape(source.api_url)}).")


@source_app.command("list")
def source_list(
    ctx: typer.Context,
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """List the sources."""

    from kandji_bridge import source_registry as sources
    from kandji_bridge.db import open_state

    state = open_state(app_context(ctx).settings())
    rows = sources.list_sources(state)
    if output is ListFormat.json:
        print_json(
            [
                {
                    "name": source.name,
                    "api_url": source.api_url,
                    "poll_interval_seconds": source.poll_interval_seconds,
                    "retention_days": source.retention_days,
                    "logs_enabled": source.logs_enabled,
                    "created_at": source.created_at.isoformat(),
                }
                for source in rows
            ]
        )
        return
    if not rows:
        err.print("No sources yet; add one with `kandji-bridge source add`.")
        return
    table = Table("name", "API URL", "poll interval", "retention", "added")
    for source in rows:
        table.add_row(
            escape(source.name),
            escape(source.api_url),
            f"{source.poll_interval_seconds} s",
            f"{source.retention_days} days",
            source.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    print_table(table)


@source_app.command("update")
def source_update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The source to change.")],
    token_env: Annotated[
        str | None, typer.Option(help="Rotate the token: read the new one from this variable.")
    ] = None,
    token_stdin: Annotated[
        bool, typer.Option(help="Rotate the token: read the new one from standard input.")
    ] = False,
    poll_interval: Annotated[
        int | None, typer.Option(min=1, help="Seconds between polls for new audit events.")
    ] = None,
    retention_days: Annotated[
        int | None,
        typer.Option(min=1, max=3650, help="Days the log store keeps this source's events."),
    ] = None,
    display_name: Annotated[
        str | None, typer.Option(help='A name to show for the source ("" clears it).')
    ] = None,
) -> None:
    """Change a source: rotate its token (verified first), polling, retention, display name."""

    from kandji_bridge.db import open_state
    from kandji_bridge.operations.sources import update_source
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    token = read_token(token_env, token_stdin) if token_env or token_stdin else None
    if token is None and poll_interval is None and retention_days is None and display_name is None:
        raise UsageError(
            "Give what to change: --token-env VAR or --token-stdin, --poll-interval, "
            "--retention-days or --display-name."
        )
    state = open_state(settings)
    service = running_service(settings) if retention_days is not None else None
    if service is not None and token is None and poll_interval is None and display_name is None:
        # serve holds the store: it applies the retention to the stored events
        updated = advert.set_retention(service, name, retention_days)
        out.print(f"Updated source {escape(updated['source']['name'])}: retention.")
        return
    if service is not None:  # the token and the rest first (all or nothing), then the retention
        result = update_source(
            settings,
            state,
            None,
            name,
            token=token,
            poll_interval=poll_interval,
            display_name=display_name,
        )
        if result.report is not None:
            print_report(result.report)
        advert.set_retention(service, result.source.name, retention_days)
        changed = ", ".join([*result.changed, "retention"])
        out.print(f"Updated source {escape(result.source.name)}: {changed}.")
        return
    store = open_store(settings) if retention_days is not None else None
    try:
        result = update_source(
            settings,
            state,
            store,
            name,
            token=token,
            poll_interval=poll_interval,
            retention_days=retention_days,
            display_name=display_name,
        )
    finally:
        if store is not None:
            store.close()
    if result.report is not None:
        print_report(result.report)
    out.print(f"Updated source {escape(result.source.name)}: {', '.join(result.changed)}.")


@source_app.command("remove")
def source_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The source to remove.")],
    delete_events: Annotated[
        bool,
        typer.Option(
            "--delete-events", help="Also delete its stored audit events (kept by default)."
        ),
    ] = False,
) -> None:
    """Remove a source (its token is deleted)."""

    from kandji_bridge.db import open_state
    from kandji_bridge.operations.sources import remove_source
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    state = open_state(settings)
    if not delete_events:
        remove_source(state, name)
        out.print(f"Removed source {escape(name)}.")
        return
    service = running_service(settings)
    if service is not None:  # serve holds the store: it removes the source and its events
        deleted = advert.remove_source_and_events(service, name.strip())
        out.print(
            f"Removed source {escape(name.strip())} and deleted its {deleted:,} stored events."
        )
        return
    store = open_store(settings)  # before the source goes
    try:
        removed = remove_source(state, name, delete_events_from=store)
    finally:
        store.close()
    out.print(
        f"Removed source {escape(removed.source.name)} and deleted its "
        f"{removed.events_deleted:,} stored events."
    )


# -- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: one clear sentence on stderr for any failure, a traceback only with --debug."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="kandji-bridge", standalone_mode=False)
    except typer.TyperException as exc:  # a bad flag or argument, found while parsing
        exc.show(file=sys.stderr)  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    except UsageError as exc:
        err.print(f"[red]Error:[/red] {escape(exc.message)} See `kandji-bridge --help`.")
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("Interrupted.")
        sys.exit(130)
    except BridgeError as exc:
        if debug:
            raise
        err.print(f"[red]Error:[/red] {escape(redact.scrub(exc.message))}")
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"[red]Error:[/red] unexpected {type(exc).__name__}: {escape(redact.scrub(str(exc)))}. "
            "Run again with --debug for details, and please report it."
        )
        sys.exit(1)
    sys.exit(result if isinstance(result, int) else 0)
