"""Asset Panda's Integrations flow for Kandji: the Kandji connection, mappings, the mapping page.

Integrations Store → Kandji tile → Add → Configure → Base URL + API Key → "Test and save
connection" → "Continue with mapping" → Mapping List → a new mapping → Save, which activates it
and starts its first sync. The same through the REST API under /api/integrations/kandji and
/api/mappings.

The connection is a source (table `sources`) with `logs_enabled=False`: it only imports devices.
A source that already reads the same API URL is reused (its token replaced after a successful
test). The integration's connection is the source saved most recently.
"""

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.convert import Value, text
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.inventory import mappings, runs
from kandji_bridge.inventory.fields import (
    CATALOG,
    DETAIL_FIELDS,
    LIST_FIELDS,
    KandjiField,
    identifier_fields,
)
from kandji_bridge.inventory.mappings import (
    DEFAULT_SCHEDULE_MINUTES,
    MappingInfo,
    MappingSpec,
    OnRemoved,
    Pair,
)
from kandji_bridge.inventory.runs import RunInfo
from kandji_bridge.inventory.sync import SyncReport
from kandji_bridge.jobs import status as jobs
from kandji_bridge.kandji.errors import (
    KandjiError,
    PermissionDeniedError,
)
from kandji_bridge.operations import collections as collection_operations
from kandji_bridge.operations import mappings as mapping_operations
from kandji_bridge.operations.connection import (
    ConnectionTest,
    current_connection,
    missing_permission,
    test_and_save_connection,
)
from kandji_bridge.operations.mappings import MappingDraft
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.templating import render

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["integrations"])

PREVIEW_LIMIT = 20  # devices shown in a dry-run preview
HISTORY_LIMIT = 20  # runs shown on the mapping page
BLANK_ROWS = 0  # field rows of a new form; "Add more" adds one (with or without JavaScript)
REMOVAL_POLICIES = (
    (OnRemoved.KEEP.value, "Keep the record as it is"),
    (OnRemoved.MARK.value, "Mark the record removed"),
    (OnRemoved.ARCHIVE.value, "Archive the record"),
)


# -- Mappings: the form, validated field by field ----------------------------------------------


def save_and_start(runtime: Runtime, spec: MappingSpec, verify: bool = True) -> MappingInfo:
    """Validate, check the token can read what the mapping needs, save, start the first sync.

    With the scheduler running the sync is triggered; without it, it runs here and now (its run
    is in the history either way)."""
    mapping = mapping_operations.create_mapping(
        runtime.state, spec, verify=verify, explain=_explained
    )
    mapping_operations.start_sync(runtime.jobs, mapping)
    return mapping


def _explained(exc: KandjiError) -> str:
    if isinstance(exc, PermissionDeniedError):
        return missing_permission(exc.permission)
    return str(exc)


@dataclass(frozen=True)
class ShownChange:
    """A dry-run change as the page shows it: values as text, "(empty)" for none."""

    action: str
    record: str
    device: str | None
    fields: list[tuple[str, str, str]]  # (label, old, new)


def shown_changes(report: SyncReport | None, limit: int = PREVIEW_LIMIT) -> list[ShownChange]:
    if report is None:
        return []
    return [
        ShownChange(
            change.action,
            change.record,
            change.device,
            [(f.label, _shown(f.old), _shown(f.new)) for f in change.fields],
        )
        for change in report.changes[:limit]
    ]


def _shown(value: Value) -> str:
    return "(empty)" if value is None else text(value)


# -- Pages: Integrations Store and the connection ------------------------------------------------


@pages.get("/integrations")
def store_page(request: Request, principal: CurrentUser, tab: str = "store") -> Response:
    connection = current_connection(runtime_of(request).state)
    added = tab == "module"
    return render(
        request,
        "integrations/store.html",
        {
            "section": "integrations",
            "tab": "module" if added else "store",
            "connection": connection,
            "kandji_added": added or connection is not None,
        },
    )


@pages.get("/integrations/kandji")
def kandji_page(request: Request, principal: CurrentUser) -> Response:
    connection = current_connection(runtime_of(request).state)
    values = {"base_url": connection.api_url if connection else ""}
    return _kandji(request, connection, values)


@pages.post("/integrations/kandji")
def kandji_save(
    request: Request,
    principal: CurrentUser,
    base_url: Annotated[str, Form()] = "",
    api_key: Annotated[str, Form()] = "",
) -> Response:
    runtime = runtime_of(request)
    result = test_and_save_connection(runtime.settings, runtime.state, base_url, api_key)
    values = {"base_url": base_url}
    if not result.ok:
        connection = current_connection(runtime.state)
        return _kandji(request, connection, values, result, status_code=400)
    return _kandji(request, result.source, values, result)


def _kandji(
    request: Request,
    connection: sources.SourceInfo | None,
    values: dict[str, str],
    result: ConnectionTest | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    response = render(
        request,
        "integrations/kandji.html",
        {
            "section": "integrations",
            "connection": connection,
            "result": result,
            "values": values,
            "errors": result.errors if result else {},
        },
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# -- Pages: Mapping List, the new-mapping form and its fragments ---------------------------------


@pages.get("/integrations/mappings")
def mapping_list_page(request: Request, principal: CurrentUser) -> Response:
    runtime = runtime_of(request)
    return render(
        request,
        "integrations/mappings.html",
        {
            "section": "integrations",
            "summaries": mappings.list_mappings(runtime.state),
            "connection": current_connection(runtime.state),
            "scheduler": runtime.jobs.background,
        },
    )


@pages.get("/integrations/mapping-form")
def new_mapping_page(request: Request, principal: CurrentUser, collection: str = "") -> Response:
    state = runtime_of(request).state
    connection = current_connection(state)
    form = MappingDraft(
        source=connection.name if connection else "",
        collection=collection or _first_collection(state),
        rows=[("", "")] * BLANK_ROWS,
    )
    return _mapping_form(request, form)


@pages.post("/integrations/mappings")
async def create_mapping_page(request: Request, principal: CurrentUser) -> Response:
    data = await request.form()
    form = _form_from(data)
    runtime = runtime_of(request)
    if data.get("action") == "add":  # "Add more" without JavaScript
        form.rows.append(("", ""))
        return _mapping_form(request, form)
    spec, errors = await asyncio.to_thread(mapping_operations.check_mapping, runtime.state, form)
    if spec is None:
        return _mapping_form(request, form, errors, status_code=400)
    try:
        mapping = await asyncio.to_thread(save_and_start, runtime, spec)
    except BridgeError as exc:
        return _mapping_form(request, form, {"": str(exc)}, status_code=400)
    return RedirectResponse(_mapping_url(mapping.name, "created"), status_code=303)


@pages.get("/integrations/mapping-form/section")
def mapping_section(request: Request, principal: CurrentUser) -> Response:
    """The Mapping & Sync Direction section for the chosen collection (htmx, on its change)."""
    form = _form_from(request.query_params)
    return _mapping_form(request, form, template="integrations/_mapping_section.html")


@pages.get("/integrations/mapping-form/row")
def mapping_row(request: Request, principal: CurrentUser, collection: str = "") -> Response:
    """One more blank field row ("Add more", htmx)."""
    context = _form_context(runtime_of(request).state, MappingDraft(collection=collection))
    context.update(row=("", ""), index=_row_id(), errors={})
    return render(request, "integrations/_field_row.html", context)


@pages.get("/integrations/mapping-form/hint")
def mapping_hint(
    request: Request, principal: CurrentUser, kandji: str = "", identifier_kandji: str = ""
) -> Response:
    """The description and usage recommendation of the Kandji field just chosen (htmx)."""
    found = CATALOG.get(kandji or identifier_kandji)
    return render(request, "integrations/_hint.html", {"kandji_field": found})


def _form_from(data: Any) -> MappingDraft:
    kandji, labels = data.getlist("kandji"), data.getlist("field")
    return MappingDraft(
        name=str(data.get("name", "")),
        source=str(data.get("source", "")),
        entity=str(data.get("entity", "devices")),
        collection=str(data.get("collection", "")),
        identifier_kandji=str(data.get("identifier_kandji", "")),
        identifier_field=str(data.get("identifier_field", "")),
        rows=[(str(k), str(f)) for k, f in zip(kandji, labels, strict=False)],
        schedule_minutes=str(data.get("schedule_minutes", DEFAULT_SCHEDULE_MINUTES)),
        on_removed=str(data.get("on_removed", OnRemoved.KEEP.value)),
    )


def _first_collection(state: StateDB) -> str:
    summaries = collection_operations.list_collections(state)
    return summaries[0].collection.name if len(summaries) == 1 else ""


def _row_id() -> str:
    return secrets.token_hex(4)


def _form_context(state: StateDB, form: MappingDraft) -> dict[str, Any]:
    collection = None
    if form.collection:
        try:
            collection = collections.get_collection(state, form.collection)
        except NotFound:
            collection = None
    fields = collection.fields if collection else ()
    return {
        "form": form,
        "collection": collection,
        "unique_fields": [f for f in fields if f.unique],
        "all_fields": list(fields),
        "identifier_options": identifier_fields(),
        "list_fields": LIST_FIELDS,
        "detail_fields": DETAIL_FIELDS,
        "catalog": CATALOG,
    }


def _mapping_form(
    request: Request,
    form: MappingDraft,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    template: str = "integrations/mapping_form.html",
) -> HTMLResponse:
    state = runtime_of(request).state
    context = _form_context(state, form)
    context.update(
        section="integrations",
        errors=errors or {},
        values={
            "name": form.name,
            "schedule_minutes": form.schedule_minutes,
            "on_removed": form.on_removed,
        },
        rows=[(_row_id(), row, f"row-{index}") for index, row in enumerate(form.rows)],
        collections=[
            summary.collection for summary in collection_operations.list_collections(state)
        ],
        sources=sources.list_sources(state),
        removal_policies=REMOVAL_POLICIES,
    )
    return render(request, template, context, status_code=status_code)


# -- Pages: the mapping ----------------------------------------------------------------------


def _mapping_url(name: str, done: str = "") -> str:
    return f"/integrations/mappings/{quote(name, safe='')}" + (f"?done={done}" if done else "")


@pages.get("/integrations/mappings/{name}")
def mapping_page(request: Request, principal: CurrentUser, name: str, done: str = "") -> Response:
    return _mapping_page(request, name, done=done)


@pages.post("/integrations/mappings/{name}/sync")
def sync_now_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    mapping = mappings.get_mapping(runtime.state, name)
    done = "triggered" if mapping_operations.start_sync(runtime.jobs, mapping).queued else "synced"
    return RedirectResponse(_mapping_url(mapping.name, done), status_code=303)


@pages.post("/integrations/mappings/{name}/preview")
def preview_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    mapping = mappings.get_mapping(runtime.state, name)
    try:
        report, error = mapping_operations.preview_mapping(runtime.state, mapping.name), ""
    except BridgeError as exc:
        report, error = None, str(exc)
    if "hx-request" in request.headers:
        context = {
            "report": report,
            "changes": shown_changes(report),
            "preview_error": error,
            "limit": PREVIEW_LIMIT,
        }
        return render(request, "integrations/_preview.html", context)
    return _mapping_page(request, mapping.name, report=report, preview_error=error)


@pages.post("/integrations/mappings/{name}/remove")
def remove_page(request: Request, principal: CurrentUser, name: str) -> Response:
    mapping_operations.remove_mapping(runtime_of(request).state, name)
    return RedirectResponse("/integrations/mappings", status_code=303)


def _mapping_page(
    request: Request,
    name: str,
    *,
    done: str = "",
    report: SyncReport | None = None,
    preview_error: str = "",
) -> HTMLResponse:
    runtime = runtime_of(request)
    mapping = mappings.get_mapping(runtime.state, name)
    history = runs.list_runs(runtime.state, mapping.id, HISTORY_LIMIT)
    status = jobs.job_statuses(runtime.state).get(jobs.mapping_job(mapping.id))
    return render(
        request,
        "integrations/mapping.html",
        {
            "section": "integrations",
            "mapping": mapping,
            "runs": history,
            "job": status,
            "scheduler": runtime.jobs.background,
            "done": done,
            "report": report,
            "changes": shown_changes(report),
            "preview_error": preview_error,
            "limit": PREVIEW_LIMIT,
            "url": _mapping_url(mapping.name),
        },
    )


# -- REST API --------------------------------------------------------------------------------


class ConnectionIn(BaseModel):
    base_url: str = Field(description="The Kandji web or API URL: https://yourcompany.kandji.io")
    api_key: str = Field(description="The API token; stored encrypted, never returned.")


class CheckOut(BaseModel):
    name: str
    ok: bool | None
    detail: str


class ConnectionOut(BaseModel):
    connected: bool
    source: str | None = None
    api_url: str | None = None
    logs_enabled: bool | None = None
    updated_at: datetime | None = None
    note: str | None = None  # how the API URL was derived from the web address given
    checks: list[CheckOut] = []


class PairIn(BaseModel):
    kandji: str = Field(description="A Kandji field key (serial_number) or label.")
    field: str = Field(description="The collection field's label.")


class MappingIn(BaseModel):
    name: str
    source: str | None = Field(None, description="Default: the Kandji integration's connection.")
    collection: str
    entity: str = "devices"
    identifier: PairIn
    fields: list[PairIn] = []
    schedule_minutes: int = DEFAULT_SCHEDULE_MINUTES
    on_removed: OnRemoved = OnRemoved.KEEP
    verify: bool = Field(True, description="Check the token's permissions before saving.")


class MappedFieldOut(BaseModel):
    kandji: str
    kandji_label: str
    recommendation: str
    needs_details: bool
    field: str
    field_type: str
    unique: bool
    is_identifier: bool


class RunOut(BaseModel):
    id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    created: int
    updated: int
    unchanged: int
    skipped: int
    conflicts: int
    vanished: int
    api_requests: int
    details_requests: int
    errors: list[str]


class MappingOut(BaseModel):
    id: str
    name: str
    source: str
    entity: str
    collection: str
    identifier: PairIn
    fields: list[MappedFieldOut]
    schedule_minutes: int
    on_removed: OnRemoved
    created_at: datetime
    warnings: list[str] = []
    last_run: RunOut | None = None
    sync: str | None = Field(
        None, description="After create/sync: 'triggered' (the scheduler runs it) or 'ran'."
    )


class FieldChangeOut(BaseModel):
    label: str
    old: Value
    new: Value


class ChangeOut(BaseModel):
    action: str
    record: str
    device: str | None
    fields: list[FieldChangeOut]


class PreviewOut(BaseModel):
    mapping: str
    listed: int
    created: int
    updated: int
    unchanged: int
    skipped: int
    conflicts: int
    vanished: int
    api_requests: int
    details_requests: int
    changes: list[ChangeOut]
    more_changes: int
    problems: list[str]


@api.get("/integrations/kandji")
def get_connection(request: Request, principal: CurrentUser) -> ConnectionOut:
    """The Kandji integration's connection (never its key)."""
    return _connection_out(current_connection(runtime_of(request).state))


@api.put(
    "/integrations/kandji", responses={400: {"description": "The test failed; nothing saved."}}
)
def put_connection(request: Request, principal: CurrentUser, body: ConnectionIn) -> Response:
    """Test the Base URL and API Key (GET /devices and GET /device-details) and save them."""
    runtime = runtime_of(request)
    result = test_and_save_connection(runtime.settings, runtime.state, body.base_url, body.api_key)
    checks = [CheckOut(name=c.name, ok=c.ok, detail=c.detail) for c in result.checks]
    if not result.ok:
        detail = next(iter(result.errors.values()), "The connection test failed.")
        return JSONResponse(
            {"detail": detail, "checks": [check.model_dump() for check in checks]},
            status_code=400,
        )
    out = _connection_out(result.source)
    out.note = result.api_url.note if result.api_url else None
    out.checks = checks
    return JSONResponse(out.model_dump(mode="json"))


@api.get("/mappings")
def list_mappings_api(request: Request, principal: CurrentUser) -> list[MappingOut]:
    return [
        _mapping_out(summary.mapping, summary.last_run)
        for summary in mappings.list_mappings(runtime_of(request).state)
    ]


@api.post("/mappings", status_code=201)
def create_mapping_api(request: Request, principal: CurrentUser, body: MappingIn) -> MappingOut:
    """Create a mapping (as `mapping create`), activate it and start its first sync."""
    runtime = runtime_of(request)
    source = body.source
    if not source:
        connection = current_connection(runtime.state)
        if connection is None:
            raise BridgeError(
                "There is no Kandji connection yet; PUT /api/integrations/kandji first."
            )
        source = connection.name
    spec = MappingSpec(
        name=body.name,
        source=source,
        collection=body.collection,
        identifier=Pair(body.identifier.kandji, body.identifier.field),
        pairs=[Pair(pair.kandji, pair.field) for pair in body.fields],
        entity=body.entity,
        on_removed=body.on_removed,
        schedule_minutes=body.schedule_minutes,
    )
    mapping = save_and_start(runtime, spec, verify=body.verify)
    return _mapping_out(mapping, _last_run(runtime.state, mapping), _sync_word(runtime))


@api.get("/mappings/{name}")
def get_mapping_api(request: Request, principal: CurrentUser, name: str) -> MappingOut:
    state = runtime_of(request).state
    mapping = mappings.get_mapping(state, name)
    return _mapping_out(mapping, _last_run(state, mapping))


@api.delete("/mappings/{name}", status_code=204)
def delete_mapping_api(request: Request, principal: CurrentUser, name: str) -> Response:
    """Remove the mapping and its sync history; the collection keeps its records."""
    mapping_operations.remove_mapping(runtime_of(request).state, name)
    return Response(status_code=204)


@api.post("/mappings/{name}/sync")
def sync_mapping_api(request: Request, principal: CurrentUser, name: str) -> MappingOut:
    """Sync now: triggered in the background, or run here when no scheduler runs."""
    runtime = runtime_of(request)
    mapping = mappings.get_mapping(runtime.state, name)
    mapping_operations.start_sync(runtime.jobs, mapping)
    return _mapping_out(mapping, _last_run(runtime.state, mapping), _sync_word(runtime))


@api.post("/mappings/{name}/preview")
def preview_mapping_api(
    request: Request,
    principal: CurrentUser,
    name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = PREVIEW_LIMIT,
) -> PreviewOut:
    """A dry run: what a sync would create and update, field by field; nothing is written."""
    report = mapping_operations.preview_mapping(runtime_of(request).state, name)
    return PreviewOut(
        mapping=report.mapping,
        listed=report.listed,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        skipped=report.skipped,
        conflicts=report.conflicts,
        vanished=report.vanished,
        api_requests=report.api_requests,
        details_requests=report.details_requests,
        changes=[
            ChangeOut(
                action=change.action,
                record=change.record,
                device=change.device,
                fields=[FieldChangeOut(label=f.label, old=f.old, new=f.new) for f in change.fields],
            )
            for change in report.changes[:limit]
        ],
        more_changes=max(0, len(report.changes) - limit),
        problems=[str(problem) for problem in report.problems],
    )


@api.get("/mappings/{name}/runs")
def list_runs_api(
    request: Request,
    principal: CurrentUser,
    name: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = HISTORY_LIMIT,
) -> list[RunOut]:
    """The mapping's sync runs, newest first."""
    state = runtime_of(request).state
    mapping = mappings.get_mapping(state, name)
    return [_run_out(run) for run in runs.list_runs(state, mapping.id, limit)]


def _connection_out(source: sources.SourceInfo | None) -> ConnectionOut:
    if source is None:
        return ConnectionOut(connected=False)
    return ConnectionOut(
        connected=True,
        source=source.name,
        api_url=source.api_url,
        logs_enabled=source.logs_enabled,
        updated_at=source.updated_at,
    )


def _last_run(state: StateDB, mapping: MappingInfo) -> RunInfo | None:
    return next(iter(runs.list_runs(state, mapping.id, 1)), None)


def _sync_word(runtime: Runtime) -> str:
    return "triggered" if runtime.jobs.background else "ran"


def _mapping_out(
    mapping: MappingInfo, last_run: RunInfo | None, sync: str | None = None
) -> MappingOut:
    ident = mapping.identifier
    return MappingOut(
        id=mapping.id,
        name=mapping.name,
        source=mapping.source.name,
        entity=mapping.entity,
        collection=mapping.collection.name,
        identifier=PairIn(kandji=ident.kandji.key, field=ident.field.label),
        fields=[_mapped_out(mapped.kandji, mapped) for mapped in mapping.fields],
        schedule_minutes=mapping.schedule_minutes,
        on_removed=mapping.on_removed,
        created_at=mapping.created_at,
        warnings=list(mapping.warnings),
        last_run=_run_out(last_run) if last_run else None,
        sync=sync,
    )


def _mapped_out(kandji: KandjiField, mapped: mappings.MappedField) -> MappedFieldOut:
    return MappedFieldOut(
        kandji=kandji.key,
        kandji_label=kandji.label,
        recommendation=kandji.recommendation,
        needs_details=kandji.needs_details,
        field=mapped.field.label,
        field_type=mapped.field.type.value,
        unique=mapped.field.unique,
        is_identifier=mapped.is_identifier,
    )


def _run_out(run: RunInfo) -> RunOut:
    return RunOut.model_validate(run, from_attributes=True)
