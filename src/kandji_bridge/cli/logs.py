"""`logs sync` and `logs query`: the audit-log pipeline from the command line."""

import csv
import sys
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from kandji_bridge.cli.common import (
    app_context,
    err,
    not_blank,
    out,
    print_table,
    running_service,
)
from kandji_bridge.config import Settings
from kandji_bridge.errors import BridgeError, UsageError

if TYPE_CHECKING:
    from kandji_bridge.logs.collector import PassResult
    from kandji_bridge.logs.store import LogStore
    from kandji_bridge.service import advert

logs_app = typer.Typer(help="Audit logs: collect them, query them.", no_args_is_help=True)


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def open_store(settings: Settings) -> "LogStore":
    """The log store, schema ensured; damaged parts the engine moved aside are said on stderr."""
    from kandji_bridge.logs.store import open_ready_store

    store, notice = open_ready_store(settings.log_store, settings.query_limits)
    if notice:
        err.print(f"[yellow]Warning:[/yellow] {escape(notice)}")
    return store


@logs_app.command("sync")
def sync(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The source to collect.")],
    backfill_days: Annotated[
        int | None,
        typer.Option(min=1, max=366, help="On a first sync, backfill only this many days."),
    ] = None,
) -> None:
    """One collection pass for a source (the backfill on a first run), then exit."""
    run_pass(app_context(ctx).settings(), name, backfill_days=backfill_days)


@logs_app.command("resync")
def resync(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The source to collect.")],
    start: Annotated[
        str,
        typer.Option("--from", help="First day (YYYY-MM-DD) or moment (ISO 8601, UTC if no zone)."),
    ],
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last day (included) or moment; default: now."),
    ] = None,
) -> None:
    """Collect a period again from Kandji: events already stored are skipped, holes are filled."""
    window = (_moment(start, "--from", end_of_day=False), _moment(end, "--to", end_of_day=True))
    if window[0] >= window[1]:
        raise UsageError(
            f"--from {start} is not before --to {end or 'now'}; give a period that starts first."
        )
    run_pass(app_context(ctx).settings(), name, window=window)


def _moment(text: str | None, flag: str, *, end_of_day: bool) -> datetime:
    """A day (its start, or its last microsecond for --to) or an ISO moment, in UTC."""
    if text is None:
        return datetime.now(UTC)
    try:
        if len(text.strip()) == 10:
            day = datetime.combine(date.fromisoformat(text.strip()), time.min, UTC)
            return day + timedelta(days=1, microseconds=-1) if end_of_day else day
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS."
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run_pass(
    settings: Settings,
    name: str,
    *,
    backfill_days: int | None = None,
    window: tuple[datetime, datetime] | None = None,
) -> None:
    """`logs sync` (window None) or `logs resync` of a source: the summary, even of a pass that
    ended early."""
    from kandji_bridge.db import open_state
    from kandji_bridge.logs.enrich import build_enricher
    from kandji_bridge.operations.polling import PassFailed, sync_source

    service = running_service(settings)
    if service is not None:
        sync_through_service(service, name.strip(), backfill_days=backfill_days, window=window)
        return
    store = open_store(settings)
    enricher = build_enricher()
    try:
        with open_state(settings) as state, PassProgress(enabled=out.is_terminal) as bar:
            try:
                result = sync_source(
                    settings,
                    state,
                    store,
                    enricher,
                    name,
                    backfill_days=backfill_days,
                    window=window,
                    on_page=lambda result, _stats: bar.update(result),
                )
            except PassFailed as exc:
                out.print(summary(name.strip(), exc.result, window))
                raise
            out.print(summary(name.strip(), result, window))
    finally:
        enricher.close()
        store.close()


def sync_through_service(
    service: "advert.Advert",
    name: str,
    *,
    backfill_days: int | None,
    window: tuple[datetime, datetime] | None,
) -> None:
    """`logs sync` or `logs resync` while serve holds the store: serve runs the pass now, the
    CLI waits. A resync or a backfill runs in the service's request and says what it did."""
    from kandji_bridge.logs.collector import PassResult
    from kandji_bridge.service import advert

    err.print(f"The running service at {escape(service.url)} polls {escape(name)} now…")
    if window is not None or backfill_days is not None:
        done = advert.run_pass(service, name, backfill_days=backfill_days, window=window)
        result = PassResult(
            backfill=done["backfill"],
            start=None,
            pages=done["pages"],
            fetched=done["fetched"],
            stored=done["stored"],
            duplicates=done["duplicates"],
            quarantined=done["quarantined"],
            covered_until=(
                datetime.fromisoformat(done["covered_until"]) if done["covered_until"] else None
            ),
            started=0.0,
            finished=done["seconds"],
        )
        out.print(summary(name, result, window))
        return
    status = advert.poll_source(service, name)
    if status.get("last_error"):
        raise BridgeError(status["last_error"])
    out.print(
        f"Polled {name} through the running service: {status.get('events_ingested', 0):,} events "
        f"stored for {name}, status {status.get('status')}."
    )


def summary(
    name: str, result: "PassResult", window: tuple[datetime, datetime] | None = None
) -> str:
    kind = "Backfilled" if result.backfill else "Collected"
    pages = "page" if result.pages == 1 else "pages"
    until = (
        f"; {name} is stored up to {result.covered_until:%Y-%m-%d %H:%M:%S} UTC"
        if result.covered_until
        else ""
    )
    if window is not None:
        kind = "Resynced"
        until = f"; the period {window[0]:%Y-%m-%d %H:%M:%S} to {window[1]:%Y-%m-%d %H:%M:%S} UTC"
    return (
        f"{kind} {result.stored:,} new events for {name} from {result.pages:,} {pages} "
        f"({result.duplicates:,} already stored, {result.quarantined:,} quarantined) "
        f"in {result.seconds:.1f} s{until}."
    )


class PassProgress:
    """A progress bar over the time span a pass covers: events, pages, rate and ETA."""

    def __init__(self, enabled: bool) -> None:
        self.progress = (
            Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[events]:>9,} events  {task.fields[pages]:>6,} pages"),
                TextColumn("{task.fields[rate]:>7,.0f}/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=out,
                transient=True,
            )
            if enabled
            else None
        )
        self.task: Any = None
        self.first: datetime | None = None

    def __enter__(self) -> "PassProgress":
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, result: "PassResult") -> None:
        if self.progress is None or result.covered_until is None:
            return
        start = result.start or self.first or result.covered_until
        self.first = start
        span = max((datetime.now(UTC) - start).total_seconds(), 1.0)
        done = (result.covered_until - start).total_seconds()
        fields = {
            "events": result.fetched,
            "pages": result.pages,
            "rate": result.fetched / max(result.seconds, 1e-6),
        }
        if self.task is None:
            description = "backfill" if result.backfill else "collect"
            self.task = self.progress.add_task(description, total=span, **fields)
        self.progress.update(self.task, total=span, completed=done, **fields)


@logs_app.command("query")
def query(
    ctx: typer.Context,
    sql: Annotated[str, typer.Argument(help="SQL to run; kandji_logs is the table.")],
    output: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.table,
) -> None:
    """Run read-only SQL against the log store."""
    from kandji_bridge.operations.queries import QueryAnswer, run_query
    from kandji_bridge.service import advert

    settings = app_context(ctx).settings()
    service = running_service(settings)
    if service is not None:  # serve holds the store: it runs the query
        answer = advert.run_query(service, sql)
        result = QueryAnswer(answer["columns"], answer["types"], answer["rows"])
    else:
        store = open_store(settings)
        try:
            result = run_query(store, sql, user="cli")
        finally:
            store.close()
    if output is Format.json:
        for record in result.records():
            sys.stdout.write(orjson.dumps(record, default=str).decode() + "\n")
    elif output is Format.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows([_text(value) for value in row] for row in result.rows)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*(escape(_text(value)) for value in row))
        print_table(table)
        err.print(f"{len(result.rows):,} rows")


def _text(value: object) -> str:
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else str(value)
