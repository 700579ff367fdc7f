"""`collection`, `mapping` and `inventory` commands (the contract is docs/CLI.md)."""

import shlex
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as ProgressBar
from rich.table import Table

from kandji_bridge.cli.common import (
    ListFormat,
    app_context,
    err,
    not_blank,
    out,
    print_json,
    print_table,
)
from kandji_bridge.errors import UsageError
from kandji_bridge.inventory.mapping_options import DEFAULT_SCHEDULE_MINUTES, OnRemoved

if TYPE_CHECKING:
    from kandji_bridge.assets.collections import FieldInfo
    from kandji_bridge.assets.convert import Value
    from kandji_bridge.db import StateDB
    from kandji_bridge.inventory import mappings
    from kandji_bridge.inventory.sync import Change, Progress, SyncReport

collection_app = typer.Typer(
    help="Asset collections that Kandji devices are imported into.", no_args_is_help=True
)
mapping_app = typer.Typer(
    help="Mappings: which Kandji device fields go into which collection.", no_args_is_help=True
)
inventory_app = typer.Typer(help="Device import: sync a mapping now.", no_args_is_help=True)


class ExportFormat(StrEnum):
    CSV = "csv"
    JSON = "json"


def _state(ctx: typer.Context) -> "StateDB":
    from kandji_bridge.db import open_state

    return open_state(app_context(ctx).settings())


# -- collection ------------------------------------------------------------------------------


@collection_app.command("create")
def collection_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The collection's name, e.g. ITAM.")],
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            help="LABEL:TYPE[:unique], TYPE one of text, number, boolean, date, datetime, list.",
        ),
    ] = None,
) -> None:
    """Create an asset collection with typed fields."""
    from kandji_bridge.assets import collections
    from kandji_bridge.assets.collections import InvalidCollection
    from kandji_bridge.operations import collections as operation

    if not field:
        raise UsageError("Give the collection's fields with --field 'LABEL:TYPE[:unique]'.")
    try:
        specs = [collections.parse_field_spec(spec) for spec in field]
    except InvalidCollection as exc:
        raise typer.BadParameter(str(exc), param_hint="--field") from None
    collection = operation.create_collection(_state(ctx), name, specs).collection
    unique = [f.label for f in collection.fields if f.unique]
    out.print(
        f"Created collection {escape(collection.name)} with {len(collection.fields)} fields"
        + (f" (unique: {escape(', '.join(unique))})." if unique else ".")
    )


@collection_app.command("list")
def collection_list(
    ctx: typer.Context,
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """List the collections, with their record counts and mappings."""
    from kandji_bridge.operations import collections as operation

    summaries = operation.list_collections(_state(ctx))
    if output is ListFormat.json:
        _print_json(
            {
                "name": summary.collection.name,
                "fields": [
                    {"label": f.label, "type": f.type.value, "unique": f.unique}
                    for f in summary.collection.fields
                ],
                "records": summary.records,
                "mappings": summary.mappings,
            }
            for summary in summaries
        )
        return
    if not summaries:
        err.print("No collections yet; create one with `kandji-bridge collection create`.")
        return
    _print_table(
        ("name", "fields", "records", "mappings"),
        [
            (
                summary.collection.name,
                str(len(summary.collection.fields)),
                _counts(summary.records),
                ", ".join(summary.mappings) or "-",
            )
            for summary in summaries
        ],
        whole=(0, 3),
    )


@collection_app.command("show")
def collection_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The collection.")],
) -> None:
    """Show a collection's fields, records and mappings."""
    from kandji_bridge.operations import collections as operation

    summary = operation.show_collection(_state(ctx), name)
    collection = summary.collection
    out.print(f"Collection {escape(collection.name)}")
    table = Table("field", "type", "unique")
    for field in collection.fields:
        table.add_row(escape(field.label), field.type.value, "yes" if field.unique else "")
    print_table(table)
    out.print(f"Records: {_counts(summary.records)}")
    out.print(f"Mappings: {escape(', '.join(summary.mappings)) or 'none'}")


@collection_app.command("update")
def collection_update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The collection.")],
    rename: Annotated[str | None, typer.Option(help="A new name for the collection.")] = None,
    add_field: Annotated[
        list[str] | None,
        typer.Option(
            "--add-field", help="LABEL:TYPE[:unique], a new field (empty in every record)."
        ),
    ] = None,
    remove_field: Annotated[
        list[str] | None,
        typer.Option("--remove-field", help="A field to remove, with its values in every record."),
    ] = None,
    not_unique: Annotated[
        list[str] | None,
        typer.Option("--not-unique", help="A unique field whose values may repeat from now on."),
    ] = None,
) -> None:
    """Rename a collection, add or remove fields; an edit that would break a mapping changes
    nothing."""
    from kandji_bridge.assets import collections
    from kandji_bridge.assets.collections import InvalidCollection
    from kandji_bridge.assets.editing import CollectionEdit
    from kandji_bridge.operations import collections as operation

    try:
        edit = CollectionEdit(
            rename=rename,
            add_fields=tuple(collections.parse_field_spec(spec) for spec in add_field or []),
            remove_fields=tuple(remove_field or []),
            not_unique=tuple(not_unique or []),
        )
    except InvalidCollection as exc:
        raise typer.BadParameter(str(exc), param_hint="--add-field") from None
    if edit == CollectionEdit():
        raise UsageError(
            "Say what to change: --rename, --add-field, --remove-field or --not-unique."
        )
    collection = operation.update_collection(_state(ctx), name, edit).collection
    out.print(
        f"Updated collection {escape(collection.name)}: "
        f"{escape(', '.join(_field_shown(field) for field in collection.fields))}."
    )


def _field_shown(field: "FieldInfo") -> str:
    return f"{field.label} ({field.type.value}{', unique' if field.unique else ''})"


@collection_app.command("remove")
def collection_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The collection to delete.")],
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
) -> None:
    """Delete a collection with its records and their history (refused while a mapping fills
    it)."""
    from kandji_bridge.operations import collections as operation

    state = _state(ctx)
    summary = operation.show_collection(state, name)
    records = sum(summary.records.values())
    what = f"collection {summary.collection.name} and its {records} records with their history"
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"This deletes {what}; add --yes to confirm.")
        if not typer.confirm(f"Delete {what}?", err=True):
            err.print("Nothing was deleted.")
            raise typer.Exit(1)
    operation.remove_collection(state, summary.collection.name)
    out.print(f"Deleted {escape(what)}.")


@collection_app.command("export")
def collection_export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The collection.")],
    format: Annotated[ExportFormat, typer.Option(help="csv or json.")] = ExportFormat.CSV,
    include_archived: Annotated[bool, typer.Option(help="Also export archived records.")] = False,
) -> None:
    """Write the collection's records to standard output as CSV or JSON (keyed by field labels).

    CSV opens cleanly in a spreadsheet: UTF-8 with a byte-order mark, datetimes in UTC as
    'YYYY-MM-DD HH:MM:SS', booleans TRUE/FALSE, lists comma-separated.
    """
    from kandji_bridge.operations import collections as operation

    export = operation.export_collection(_state(ctx), name, format.value, include_archived)
    sink = sys.stdout.buffer
    for chunk in export.chunks:
        sink.write(chunk)
    sink.flush()


def _print_json(items: Iterable[dict[str, object]]) -> None:
    """One JSON object per line, as `logs query --format json` prints rows."""
    for item in items:
        sys.stdout.write(orjson.dumps(item).decode() + "\n")
    sys.stdout.flush()


def _print_table(
    headers: tuple[str, ...], rows: list[tuple[str, ...]], whole: tuple[int, ...]
) -> None:
    """A table on a terminal, whose `whole` columns (keys and names a user types) are never
    folded or cut; tab-separated lines otherwise, so a pipe or a file gets every value whole."""
    if not out.is_terminal:
        for row in (headers, *rows):
            sys.stdout.write("\t".join(cell.replace("\t", " ") for cell in row) + "\n")
        sys.stdout.flush()
        return
    table = Table()
    for index, header in enumerate(headers):
        if index in whole:
            width = max(len(row[index]) for row in (headers, *rows))
            table.add_column(header, no_wrap=True, min_width=width)
        else:
            table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    out.print(table)


def _counts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    parts = [f"{counts[status]} {status}" for status in sorted(counts) if counts[status]]
    return f"{total}" + (f" ({', '.join(parts)})" if len(parts) > 1 else "")


# -- mapping ---------------------------------------------------------------------------------


@mapping_app.command("create")
def mapping_create(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Option(callback=not_blank, help="The mapping's name, e.g. 'Kandji Device Import'."),
    ],
    source: Annotated[
        str, typer.Option(callback=not_blank, help="The Kandji source (see `source list`).")
    ],
    collection: Annotated[
        str, typer.Option(callback=not_blank, help="The collection to import into.")
    ],
    identifier: Annotated[
        str,
        typer.Option(
            help="KANDJI_FIELD=COLLECTION_FIELD; the collection field must be marked unique."
        ),
    ],
    entity: Annotated[str, typer.Option(help="The external entity: devices.")] = "devices",
    field: Annotated[
        list[str] | None,
        typer.Option("--field", help="KANDJI_FIELD=COLLECTION_FIELD, as many as needed."),
    ] = None,
    schedule_minutes: Annotated[
        int, typer.Option(help="Sync every N minutes when `serve` runs.")
    ] = DEFAULT_SCHEDULE_MINUTES,
    on_removed: Annotated[
        OnRemoved,
        typer.Option(
            help="Records of devices that left Kandji or are marked removed: keep them as they "
            "are, mark them removed, or archive them. Nothing is ever deleted."
        ),
    ] = OnRemoved.KEEP,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Save without checking the token's permissions.")
    ] = False,
) -> None:
    """Create a device mapping (its source's token is checked first unless --no-verify)."""
    from kandji_bridge.inventory import mappings
    from kandji_bridge.inventory.mappings import InvalidMapping
    from kandji_bridge.operations import mappings as mapping_operation

    try:
        spec = mappings.MappingSpec(
            name=name,
            source=source,
            collection=collection,
            identifier=mappings.parse_pair(identifier),
            pairs=[mappings.parse_pair(pair) for pair in field or []],
            entity=entity,
            on_removed=on_removed,
            schedule_minutes=schedule_minutes,
        )
    except InvalidMapping as exc:
        raise UsageError(str(exc)) from None
    mapping = mapping_operation.create_mapping(_state(ctx), spec, verify=not no_verify)
    for warning in mapping.warnings:
        err.print(f"[yellow]Note:[/yellow] {escape(warning)}")
    ident = mapping.identifier
    out.print(
        f"Created mapping {escape(mapping.name)}: devices of source "
        f"{escape(mapping.source.name)} into collection {escape(mapping.collection.name)}, "
        f"identified by {ident.kandji.key} → {escape(ident.field.label)}, "
        f"{len(mapping.fields)} fields, every {mapping.schedule_minutes} minutes, "
        f"removed devices: {mapping.on_removed.value}."
    )
    out.print(
        f"Run it now with `kandji-bridge inventory sync {escape(shlex.quote(mapping.name))}`."
    )


@mapping_app.command("fields")
def mapping_fields(
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """List every Kandji device field a mapping can use, with Asset Panda's usage recommendation."""
    from kandji_bridge.inventory.fields import CATALOG

    rows = [
        (
            field.key,
            field.label,
            field.kind.value,
            "details" if field.needs_details else "list",
            field.recommendation,
        )
        for field in CATALOG.values()
    ]
    headers = ("key", "label", "type", "from", "usage recommendation")
    if output is ListFormat.json:
        _print_json(
            dict(zip(("key", "label", "type", "from", "recommendation"), row, strict=True))
            for row in rows
        )
        return
    _print_table(headers, rows, whole=(0,))


@mapping_app.command("list")
def mapping_list(
    ctx: typer.Context,
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """List the mappings and how their last sync went."""
    from kandji_bridge.inventory import mappings

    summaries = mappings.list_mappings(_state(ctx))
    if output is ListFormat.json:
        _print_json(_mapping_json(summary) for summary in summaries)
        return
    if not summaries:
        err.print("No mappings yet; create one with `kandji-bridge mapping create`.")
        return
    rows = []
    for summary in summaries:
        mapping, run = summary.mapping, summary.last_run
        last = "never"
        if run is not None:
            last = f"{run.status} {run.started_at:%Y-%m-%d %H:%M} UTC"
        rows.append(
            (
                mapping.name,
                mapping.source.name,
                mapping.collection.name,
                f"{mapping.identifier.kandji.key} → {mapping.identifier.field.label}",
                str(len(mapping.fields)),
                f"{mapping.schedule_minutes} min" + ("" if mapping.enabled else " (disabled)"),
                mapping.on_removed.value,
                last,
            )
        )
    headers = ("name", "source", "collection", "identifier", "fields", "every", "removed")
    _print_table((*headers, "last sync"), rows, whole=(0, 1, 2, 3))


def _mapping_json(summary: "mappings.MappingSummary") -> dict[str, object]:
    mapping, run = summary.mapping, summary.last_run
    return {
        "name": mapping.name,
        "source": mapping.source.name,
        "collection": mapping.collection.name,
        "identifier": {
            "kandji": mapping.identifier.kandji.key,
            "field": mapping.identifier.field.label,
        },
        "fields": [{"kandji": m.kandji.key, "field": m.field.label} for m in mapping.fields[1:]],
        "schedule_minutes": mapping.schedule_minutes,
        "on_removed": mapping.on_removed.value,
        "enabled": mapping.enabled,
        "last_sync": None
        if run is None
        else {"status": run.status, "started_at": run.started_at.isoformat()},
    }


@mapping_app.command("update")
def mapping_update(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The mapping to change.")],
    field: Annotated[
        list[str] | None,
        typer.Option(
            "--field",
            help="KANDJI_FIELD=COLLECTION_FIELD to add, or to fill that field from another "
            "Kandji field.",
        ),
    ] = None,
    remove_field: Annotated[
        list[str] | None,
        typer.Option("--remove-field", help="A collection field the mapping stops filling."),
    ] = None,
    identifier: Annotated[
        str | None,
        typer.Option(
            help="A new KANDJI_FIELD=COLLECTION_FIELD identifier; the field must be unique."
        ),
    ] = None,
    enable: Annotated[
        bool | None,
        typer.Option(
            "--enable/--disable", help="A disabled mapping is not synced on its schedule."
        ),
    ] = None,
    schedule_minutes: Annotated[
        int | None, typer.Option(help="Sync every N minutes when `serve` runs.")
    ] = None,
    on_removed: Annotated[
        OnRemoved | None,
        typer.Option(help="Records of devices that left Kandji: keep, mark or archive."),
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Save without checking the token's permissions.")
    ] = False,
) -> None:
    """Change a mapping's fields, identifier, schedule, or enable or disable it."""
    from kandji_bridge.inventory import mappings
    from kandji_bridge.inventory.mappings import InvalidMapping
    from kandji_bridge.operations import mappings as mapping_operation

    try:
        update = mappings.MappingUpdate(
            fields=tuple(mappings.parse_pair(pair) for pair in field or []),
            remove_fields=tuple(remove_field or []),
            identifier=mappings.parse_pair(identifier) if identifier is not None else None,
            enabled=enable,
            schedule_minutes=schedule_minutes,
            on_removed=on_removed,
        )
    except InvalidMapping as exc:
        raise UsageError(str(exc)) from None
    if update == mappings.MappingUpdate():
        raise UsageError(
            "Say what to change: --field, --remove-field, --identifier, --enable or --disable, "
            "--schedule-minutes or --on-removed."
        )
    mapping = mapping_operation.update_mapping(_state(ctx), name, update, verify=not no_verify)
    for warning in mapping.warnings:
        err.print(f"[yellow]Note:[/yellow] {escape(warning)}")
    ident = mapping.identifier
    out.print(
        f"Updated mapping {escape(mapping.name)}: identified by {ident.kandji.key} → "
        f"{escape(ident.field.label)}, {len(mapping.fields)} fields, every "
        f"{mapping.schedule_minutes} minutes, removed devices: {mapping.on_removed.value}, "
        + ("enabled." if mapping.enabled else "disabled (not synced on its schedule).")
    )


@mapping_app.command("remove")
def mapping_remove(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(callback=not_blank, help="The mapping to remove.")],
) -> None:
    """Remove a mapping (its collection keeps the records it imported)."""
    from kandji_bridge.operations import mappings as mapping_operation

    mapping_operation.remove_mapping(_state(ctx), name)
    out.print(f"Removed mapping {escape(name)}; its collection keeps its records.")


# -- inventory -------------------------------------------------------------------------------


@inventory_app.command("sync")
def inventory_sync(
    ctx: typer.Context,
    mapping: Annotated[str, typer.Argument(callback=not_blank, help="The mapping to sync.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Write nothing; show what would change.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="With --dry-run: every record, field by field.")
    ] = False,
) -> None:
    """Import the mapping's devices now; prints created, updated, unchanged, skipped, conflicts.

    A sync holds the mapping's job as `serve` does, so it never runs alongside serve's scheduled
    sync or another `inventory sync`; a dry run writes nothing and needs no such hold.
    """
    from kandji_bridge.operations import mappings as mapping_operation

    state = _state(ctx)
    with _progress_bar() as progress:
        if dry_run:
            report = mapping_operation.preview_mapping(state, mapping, progress)
        else:
            report = _sync_held(state, mapping, progress)
    if dry_run:
        out.print("Dry run: nothing was written.")
        if verbose:
            for change in report.changes:
                _print_change(change)
    _print_report(report)
    if dry_run and report.changes and not verbose:
        out.print("Add --verbose to see each record, field by field.")


def _sync_held(state: "StateDB", name: str, progress: "Progress | None") -> "SyncReport":
    import asyncio

    from kandji_bridge.inventory import mappings
    from kandji_bridge.inventory.sync import sync_mapping
    from kandji_bridge.jobs import exclusive
    from kandji_bridge.jobs import status as jobs

    info = mappings.get_mapping(state, name)
    busy = (
        f"Mapping {info.name} is being synced by another process (`serve` or another "
        "`inventory sync`); wait for it to finish, or follow its run with "
        f"`kandji-bridge inventory runs {shlex.quote(info.name)}`"
    )
    with exclusive.claimed(state, jobs.mapping_job(info.id), busy) as claim:
        if claim.interrupted:
            err.print(
                f"[yellow]Note:[/yellow] the last sync of mapping {escape(info.name)} was "
                "interrupted (its process was killed); this one does what it left."
            )
        report = asyncio.run(sync_mapping(state, info.name, progress=progress))
    if claim.lost.is_set():
        err.print(
            f"[yellow]Note:[/yellow] this sync lost its hold on mapping {escape(info.name)} "
            "while it ran (it could not renew it in time), so another process may have synced "
            "it meanwhile; each batch written is complete."
        )
    return report


@inventory_app.command("runs")
def inventory_runs(
    ctx: typer.Context,
    mapping: Annotated[str, typer.Argument(callback=not_blank, help="The mapping.")],
    limit: Annotated[int, typer.Option(min=1, help="How many runs, newest first.")] = 20,
    output: Annotated[ListFormat, typer.Option("--format", help="Output format.")] = (
        ListFormat.table
    ),
) -> None:
    """Show a mapping's recent sync runs: when, counts, API requests, errors."""
    from kandji_bridge.inventory import mappings, runs

    state = _state(ctx)
    info = mappings.get_mapping(state, mapping)
    recent = runs.list_runs(state, info.id, limit)
    if output is ListFormat.json:
        print_json([{k: v for k, v in vars(run).items() if k != "mapping_id"} for run in recent])
        return
    if not recent:
        err.print(f"Mapping {escape(info.name)} has not been synced yet.")
    for run in recent:
        took = (
            f" in {(run.finished_at - run.started_at).total_seconds():.1f} s"
            if run.finished_at
            else ""
        )
        out.print(
            f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC  {run.status}{took}: created {run.created}, "
            f"updated {run.updated}, unchanged {run.unchanged}, skipped {run.skipped}, "
            f"conflicts {run.conflicts}, vanished {run.vanished}; {run.api_requests} API "
            f"requests ({run.details_requests} device details)"
        )
        for error in run.errors[:5]:
            out.print(f"    {escape(error)}")
        if len(run.errors) > 5:
            out.print(f"    ... {len(run.errors) - 5} more")


def _print_report(report: "SyncReport") -> None:
    verb = "would be " if report.dry_run else ""
    out.print(
        f"Mapping {escape(report.mapping)}: {report.listed} devices listed; "
        f"{verb}created {report.created}, {verb}updated {report.updated}, "
        f"unchanged {report.unchanged}, skipped {report.skipped}, conflicts {report.conflicts}."
    )
    if report.vanished:
        out.print(f"{report.vanished} imported devices are no longer listed by Kandji.")
    out.print(
        f"API requests: {report.api_requests} "
        f"({report.api_requests - report.details_requests} device list, "
        f"{report.details_requests} device details)."
    )
    for problem in report.problems:
        out.print(f"  [yellow]left out[/yellow] {escape(str(problem))}")


def _print_change(change: "Change") -> None:
    who = f" from device {escape(change.device)}" if change.device else ""
    out.print(f"{change.action} record {escape(repr(change.record))}{who}:")
    for field in change.fields:
        if change.action == "create":
            out.print(f"    {escape(field.label)}: {escape(_shown(field.new))}")
        else:
            old, new = _shown(field.old), _shown(field.new)
            out.print(f"    {escape(field.label)}: {escape(old)} → {escape(new)}")


def _shown(value: "Value") -> str:
    from kandji_bridge.assets.convert import text

    return "(empty)" if value is None else repr(value) if isinstance(value, str) else text(value)


STAGES = {
    "list": "Listing devices",
    "details": "Reading device details",
    "write": "Writing records",
}


@contextmanager
def _progress_bar() -> "Iterator[Progress | None]":
    """A Rich progress bar on a terminal (on stderr, so standard output stays clean)."""
    if not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with ProgressBar(*columns, console=err, transient=True) as bar:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGES[stage], total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update
