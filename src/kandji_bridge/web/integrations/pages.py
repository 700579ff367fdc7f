"""Asset Panda's Integrations flow for Kandji in the web UI: the Kandji connection, the Mapping
List, the new-mapping form and its fragments, the mapping page.

Integrations Store → Kandji tile → Add → Configure → Base URL + API Key → "Test and save
connection" → "Continue with mapping" → Mapping List → a new mapping → Save, which activates it
and starts its first sync (the same through the REST API: api.py).

The connection is a source (table `sources`) with `logs_enabled=False`: it only imports devices.
A source that already reads the same API URL gets the new key only if the key allows everything
that source's pipelines use; otherwise the user may keep the key as a separate connection
(operations/connection.py).
"""

import asyncio
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.convert import Value, text
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound, web_message
from kandji_bridge.inventory import mappings, runs
from kandji_bridge.inventory.fields import (
    CATALOG,
    DETAIL_FIELDS,
    LIST_FIELDS,
    identifier_fields,
)
from kandji_bridge.inventory.mappings import (
    DEFAULT_SCHEDULE_MINUTES,
    SCHEDULE_RANGE,
    MappingUpdate,
    OnRemoved,
    Pair,
)
from kandji_bridge.inventory.sync import SyncReport
from kandji_bridge.jobs import status as jobs
from kandji_bridge.operations import collections as collection_operations
from kandji_bridge.operations import mappings as mapping_operations
from kandji_bridge.operations.connection import (
    ConnectionTest,
    current_connection,
    mapping_connections,
    test_and_save_connection,
    uses_of,
)
from kandji_bridge.operations.mappings import MappingDraft
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.integrations.schemas import HISTORY_LIMIT, PREVIEW_LIMIT
from kandji_bridge.web.templating import render

router = APIRouter(include_in_schema=False)

BLANK_ROWS = 0  # field rows of a new form; "Add more" adds one (with or without JavaScript)
REMOVAL_POLICIES = (
    (OnRemoved.KEEP.value, "Keep the record as it is"),
    (OnRemoved.MARK.value, "Mark the record removed"),
    (OnRemoved.ARCHIVE.value, "Archive the record"),
)


# -- The dry-run preview, as the mapping page shows it --------------------------------------------


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


@router.get("/integrations")
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


@router.get("/integrations/kandji")
def kandji_page(request: Request, principal: CurrentUser) -> Response:
    connection = current_connection(runtime_of(request).state)
    values = {"base_url": connection.api_url if connection else ""}
    return _kandji(request, connection, values)


@router.post("/integrations/kandji")
def kandji_save(
    request: Request,
    principal: CurrentUser,
    base_url: Annotated[str, Form()] = "",
    api_key: Annotated[str, Form()] = "",
    separate: Annotated[str, Form()] = "",
) -> Response:
    runtime = runtime_of(request)
    result = test_and_save_connection(
        runtime.settings, runtime.state, base_url, api_key, separate=bool(separate)
    )
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
            "connections": mapping_connections(runtime_of(request).state),
            "result": result,
            "values": values,
            "errors": result.errors if result else {},
        },
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


# -- Pages: Mapping List, the new-mapping form and its fragments ---------------------------------


@router.get("/integrations/mappings")
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


@router.get("/integrations/mapping-form")
def new_mapping_page(request: Request, principal: CurrentUser, collection: str = "") -> Response:
    state = runtime_of(request).state
    connection = current_connection(state)
    form = MappingDraft(
        source=connection.name if connection else "",
        collection=collection or _first_collection(state),
        rows=[("", "")] * BLANK_ROWS,
    )
    return _mapping_form(request, form)


@router.post("/integrations/mappings")
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
        mapping = await asyncio.to_thread(
            mapping_operations.activate_mapping, runtime.jobs, runtime.state, spec
        )
    except BridgeError as exc:
        return _mapping_form(request, form, {"": web_message(exc)}, status_code=400)
    return RedirectResponse(_mapping_url(mapping.name, "created"), status_code=303)


@router.get("/integrations/mapping-form/section")
def mapping_section(request: Request, principal: CurrentUser) -> Response:
    """The Mapping & Sync Direction section for the chosen collection (htmx, on its change)."""
    form = _form_from(request.query_params)
    return _mapping_form(request, form, template="integrations/_mapping_section.html")


@router.get("/integrations/mapping-form/row")
def mapping_row(request: Request, principal: CurrentUser, collection: str = "") -> Response:
    """One more blank field row ("Add more", htmx)."""
    context = _form_context(runtime_of(request).state, MappingDraft(collection=collection))
    context.update(row=("", ""), index=_row_id(), errors={})
    return render(request, "integrations/_field_row.html", context)


@router.get("/integrations/mapping-form/hint")
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


def _mapping_url(name: str, done: str = "", after: str = "") -> str:
    query = urlencode({key: value for key, value in (("done", done), ("after", after)) if value})
    return f"/integrations/mappings/{quote(name, safe='')}" + (f"?{query}" if query else "")


@router.get("/integrations/mappings/{name}")
def mapping_page(
    request: Request, principal: CurrentUser, name: str, done: str = "", after: str = ""
) -> Response:
    return _mapping_page(request, name, done=done, after=after)


@router.post("/integrations/mappings/{name}/sync")
def sync_now_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    mapping = mappings.get_mapping(runtime.state, name)
    after = _last_finished(runtime.state, mapping.id)
    if mapping_operations.start_sync(runtime.jobs, mapping).queued:
        # The page polls until a run finishes after this moment, then shows it.
        return RedirectResponse(_mapping_url(mapping.name, "triggered", after), status_code=303)
    return RedirectResponse(_mapping_url(mapping.name, "synced"), status_code=303)


@router.get("/integrations/mappings/{name}/status")
def sync_status_fragment(
    request: Request, principal: CurrentUser, name: str, after: str = ""
) -> Response:
    """What the mapping page polls while a sync runs in the background (htmx): the same small
    fragment while it runs, then a redirect to the page showing the finished run."""
    state = runtime_of(request).state
    mapping = mappings.get_mapping(state, name)
    status = jobs.job_statuses(state).get(jobs.mapping_job(mapping.id))
    finished = _last_finished(state, mapping.id)
    if status is not None and not status.running and finished and finished != after:
        return Response(headers={"HX-Redirect": _mapping_url(mapping.name, "synced")})
    context = {"url": _mapping_url(mapping.name), "after": after}
    return render(request, "integrations/_sync_status.html", context)


def _last_finished(state: StateDB, mapping_id: str) -> str:
    """When the mapping's job last finished, as the page passes it along ("" if never)."""
    status = jobs.job_statuses(state).get(jobs.mapping_job(mapping_id))
    return status.last_finished_at.isoformat() if status and status.last_finished_at else ""


@router.post("/integrations/mappings/{name}/preview")
def preview_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    mapping = mappings.get_mapping(runtime.state, name)
    try:
        report, error = mapping_operations.preview_mapping(runtime.state, mapping.name), ""
    except BridgeError as exc:
        report, error = None, web_message(exc)
    if "hx-request" in request.headers:
        context = {
            "report": report,
            "changes": shown_changes(report),
            "preview_error": error,
            "limit": PREVIEW_LIMIT,
        }
        return render(request, "integrations/_preview.html", context)
    return _mapping_page(request, mapping.name, report=report, preview_error=error)


@router.post("/integrations/mappings/{name}/edit")
async def edit_page(request: Request, principal: CurrentUser, name: str) -> Response:
    """One edit from the mapping page: enable or disable, the schedule, add or remove a field
    row, change the identifier. A refused edit is shown on the page and changes nothing."""
    data = await request.form()
    action = str(data.get("action", ""))
    runtime = runtime_of(request)
    try:
        update = _edit_from(action, data)
        mapping = await asyncio.to_thread(
            mapping_operations.update_mapping, runtime.state, name, update
        )
    except NotFound:
        raise
    except BridgeError as exc:
        return _mapping_page(request, name, edit_error=web_message(exc), status_code=400)
    return RedirectResponse(_mapping_url(mapping.name, "updated"), status_code=303)


def _edit_from(action: str, data: Any) -> MappingUpdate:
    def pair(kandji: str, field: str) -> Pair:
        chosen = str(data.get(kandji, "")).strip(), str(data.get(field, "")).strip()
        if not all(chosen):
            raise BridgeError("Choose both the Kandji field and the collection field.")
        return Pair(*chosen)

    if action in ("enable", "disable"):
        return MappingUpdate(enabled=action == "enable")
    if action == "schedule":
        low, high = SCHEDULE_RANGE
        try:
            minutes = int(str(data.get("schedule_minutes", "")).strip())
        except ValueError:
            raise BridgeError(f"Enter a whole number of minutes from {low} to {high}.") from None
        return MappingUpdate(schedule_minutes=minutes)
    if action == "add_field":
        return MappingUpdate(fields=(pair("kandji", "field"),))
    if action == "remove_field":
        return MappingUpdate(remove_fields=(str(data.get("field", "")),))
    if action == "identifier":
        return MappingUpdate(identifier=pair("identifier_kandji", "identifier_field"))
    raise BridgeError("Choose what to change on the mapping page.")


@router.post("/integrations/mappings/{name}/remove")
def remove_page(request: Request, principal: CurrentUser, name: str) -> Response:
    mapping_operations.remove_mapping(runtime_of(request).state, name)
    return RedirectResponse("/integrations/mappings", status_code=303)


def _mapping_page(
    request: Request,
    name: str,
    *,
    done: str = "",
    after: str = "",
    report: SyncReport | None = None,
    preview_error: str = "",
    edit_error: str = "",
    status_code: int = 200,
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
            "connection": uses_of(runtime.state, mapping.source.name),
            "runs": history,
            "job": status,
            "scheduler": runtime.jobs.background,
            "done": done,
            # Poll while a sync runs in the background: Sync now's, or one found running.
            "poll_after": after
            if done == "triggered"
            else _last_finished(runtime.state, mapping.id)
            if status and status.running
            else None,
            "report": report,
            "changes": shown_changes(report),
            "preview_error": preview_error,
            "edit_error": edit_error,
            "limit": PREVIEW_LIMIT,
            "url": _mapping_url(mapping.name),
            "list_fields": LIST_FIELDS,
            "detail_fields": DETAIL_FIELDS,
            "identifier_options": identifier_fields(),
        },
        status_code=status_code,
    )
