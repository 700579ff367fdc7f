"""Collections in the web UI: the list, a new collection, editing and deleting one, the records
table (search, sort, paging, status, export) and a record's page with its change history and,
for a record imported from a Kandji device, the timeline of audit events that targeted it."""

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse

from kandji_bridge.assets import browse, collections
from kandji_bridge.assets.browse import RecordPage
from kandji_bridge.assets.collections import CollectionInfo, FieldSpec, InvalidCollection
from kandji_bridge.assets.convert import FieldType, Value, text
from kandji_bridge.assets.editing import CollectionEdit
from kandji_bridge.assets.names import check_name
from kandji_bridge.errors import AlreadyExists, BridgeError, NotFound, web_message
from kandji_bridge.operations import collections as operation
from kandji_bridge.operations.collections import CollectionOverview
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.templating import render

router = APIRouter(include_in_schema=False)

TYPES = [field_type.value for field_type in FieldType]
BLANK_ROWS = 3  # field rows of an empty "New collection" form
MAX_FORM_ROWS = collections.MAX_FIELDS
STATUS_CHOICES = (
    ("", "Active and removed"),
    ("active", "Active"),
    ("removed", "Removed"),
    ("archived", "Archived"),
    ("all", "All"),
)


def shown(value: Value, field_type: FieldType) -> str:
    """A value as the table shows it: datetimes in UTC to the second, lists comma-separated."""
    if value is None:
        return ""
    if field_type is FieldType.DATETIME and isinstance(value, str):
        return value[:19].replace("T", " ") + " UTC"
    return text(value)


# -- Pages: the list, a new collection --------------------------------------------------------


@router.get("/collections")
def list_page(
    request: Request, user: CurrentUser, created: str = "", deleted: str = ""
) -> Response:
    summaries = operation.list_collections(runtime_of(request).state)
    message = f"Deleted collection {deleted} with its records." if deleted else ""
    if created:
        message = f"Created collection {created}."
        for summary in summaries:
            if summary.collection.name == created and not any(
                field.unique for field in summary.collection.fields
            ):
                message += " It has no unique field: a mapping needs one as its unique identifier."
    context = {"section": "collections", "summaries": summaries, "message": message}
    return render(request, "collections/list.html", context)


@router.get("/collections/new")
def new_page(request: Request, user: CurrentUser) -> Response:
    rows = [{"label": "", "type": "text", "unique": False} for _ in range(BLANK_ROWS)]
    return _new_form(request, "", rows, {})


@router.get("/collections/new/field-row")
def field_row(request: Request, user: CurrentUser, index: int = 0) -> Response:
    """One more field row for the form ("Add field", through htmx)."""
    index = max(0, min(index, MAX_FORM_ROWS))
    row = {"label": "", "type": "text", "unique": False}
    context = {"index": index, "row": row, "errors": {}, "types": TYPES, "next_index": index + 1}
    return render(request, "collections/_field_row.html", context)


@router.post("/collections/new")
def create_page(
    request: Request,
    user: CurrentUser,
    name: Annotated[str, Form()] = "",
    label: Annotated[list[str] | None, Form()] = None,
    type: Annotated[list[str] | None, Form()] = None,
    unique: Annotated[list[str] | None, Form()] = None,
) -> Response:
    labels, types = label or [], type or []
    checked = set(unique or [])
    rows = [
        {
            "label": labels[index],
            "type": types[index] if index < len(types) else "text",
            "unique": str(index) in checked,
        }
        for index in range(min(len(labels), MAX_FORM_ROWS))
    ]
    errors: dict[str, str] = {}
    try:
        check_name("The collection name", name)
    except BridgeError as exc:
        errors["name"] = web_message(exc)
    specs = _form_specs(rows, errors)
    if not errors:
        try:
            created = operation.create_collection(runtime_of(request).state, name, specs)
        except AlreadyExists as exc:
            errors["name"] = web_message(exc)
        except BridgeError as exc:
            errors[""] = web_message(exc)
        else:
            return RedirectResponse(
                "/collections?" + urlencode({"created": created.collection.name}), status_code=303
            )
    rows = rows or [{"label": "", "type": "text", "unique": False}]
    return _new_form(request, name, rows, errors, status_code=400)


def _form_specs(rows: list[dict[str, Any]], errors: dict[str, str]) -> list[FieldSpec]:
    """The form's field rows as specs; a problem goes into `errors` beside its row."""
    specs: list[FieldSpec] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        label = row["label"].strip()
        if not label:
            if row["unique"]:
                errors[f"label-{index}"] = "Give this field a label, or untick Unique."
            continue  # a blank row is left out
        try:
            field_type = FieldType(row["type"])
        except ValueError:
            errors[f"type-{index}"] = f"Choose a type: {', '.join(TYPES)}."
            continue
        try:
            spec = collections.parse_field_spec(f"{label}:{field_type.value}")
        except InvalidCollection as exc:
            errors[f"label-{index}"] = web_message(exc)
            continue
        if spec.label.casefold() in seen:
            errors[f"label-{index}"] = (
                f"The label {spec.label!r} is already used by field {seen[spec.label.casefold()]}; "
                "each field needs its own label."
            )
            continue
        seen[spec.label.casefold()] = index + 1
        specs.append(FieldSpec(spec.label, field_type, row["unique"]))
    if not specs and not errors:
        errors[""] = "Add at least one field: a label and a type, like Serial (text, unique)."
    return specs


def _new_form(
    request: Request,
    name: str,
    rows: list[dict[str, Any]],
    errors: dict[str, str],
    status_code: int = 200,
) -> Response:
    context = {
        "section": "collections",
        "values": {"name": name},
        "rows": rows,
        "errors": errors,
        "types": TYPES,
    }
    return render(request, "collections/new.html", context, status_code=status_code)


# -- Pages: edit and delete a collection -------------------------------------------------------


@router.get("/collections/{name}/edit")
def edit_page(request: Request, user: CurrentUser, name: str, done: str = "") -> Response:
    return _edit_form(request, name, done=done)


@router.post("/collections/{name}/edit")
def edit_save(
    request: Request,
    user: CurrentUser,
    name: str,
    action: Annotated[str, Form()] = "",
    new_name: Annotated[str, Form()] = "",
    label: Annotated[str, Form()] = "",
    type: Annotated[str, Form()] = "text",
    unique: Annotated[str, Form()] = "",
) -> Response:
    """One edit: rename, add a field, remove a field, let a unique field's values repeat. A
    refused edit (one that would break a mapping names it) is shown and changes nothing."""
    try:
        if action == "rename":
            edit = CollectionEdit(rename=new_name)
        elif action == "add_field":
            spec = collections.parse_field_spec(f"{label}:{type}")
            edit = CollectionEdit(add_fields=(FieldSpec(spec.label, spec.type, bool(unique)),))
        elif action == "remove_field":
            edit = CollectionEdit(remove_fields=(label,))
        elif action == "not_unique":
            edit = CollectionEdit(not_unique=(label,))
        else:
            raise InvalidCollection("Choose what to change on this page.")
        edited = operation.update_collection(runtime_of(request).state, name, edit)
    except NotFound:
        raise
    except BridgeError as exc:
        values = {"new_name": new_name, "label": label, "type": type}
        return _edit_form(request, name, error=web_message(exc), values=values, status_code=400)
    return RedirectResponse(_collection_url(edited.collection) + "/edit?done=1", status_code=303)


@router.get("/collections/{name}/delete")
def delete_page(request: Request, user: CurrentUser, name: str) -> Response:
    """What deleting the collection takes with it, and a button to do it (none while a mapping
    imports into it: the page says which and links to it)."""
    summary = operation.show_collection(runtime_of(request).state, name)
    return _delete_confirmation(request, summary)


@router.post("/collections/{name}/delete")
def delete_collection(request: Request, user: CurrentUser, name: str) -> Response:
    state = runtime_of(request).state
    try:
        gone = operation.remove_collection(state, name)
    except NotFound:
        raise
    except BridgeError as exc:
        summary = operation.show_collection(state, name)
        return _delete_confirmation(request, summary, error=web_message(exc), status_code=400)
    return RedirectResponse(
        "/collections?" + urlencode({"deleted": gone.collection.name}), status_code=303
    )


def _delete_confirmation(
    request: Request, summary: CollectionOverview, error: str = "", status_code: int = 200
) -> Response:
    context = {
        "section": "collections",
        "summary": summary,
        "collection": summary.collection,
        "records": sum(summary.records.values()),
        "error": error,
        "base": _collection_url(summary.collection),
    }
    return render(request, "collections/delete.html", context, status_code=status_code)


def _edit_form(
    request: Request,
    name: str,
    *,
    done: str = "",
    error: str = "",
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    summary = operation.show_collection(runtime_of(request).state, name)
    context = {
        "section": "collections",
        "summary": summary,
        "collection": summary.collection,
        "done": done,
        "error": error,
        "values": values or {"new_name": summary.collection.name},
        "types": TYPES,
        "base": _collection_url(summary.collection),
    }
    return render(request, "collections/edit.html", context, status_code=status_code)


# -- Pages: the records table, export, a record ------------------------------------------------


@router.get("/collections/{name}")
def records_page(
    request: Request,
    user: CurrentUser,
    name: str,
    search: str = "",
    sort: str = "",
    desc: bool = False,
    status: str = "",
    page: int = 1,
    page_size: Annotated[int, Query(alias="size")] = browse.DEFAULT_PAGE_SIZE,
) -> Response:
    state = runtime_of(request).state
    summary = operation.show_collection(state, name)
    collection = summary.collection
    result = operation.browse_records(
        state,
        name,
        search=search,
        sort_field=sort or None,
        descending=desc,
        status=status,
        page=page,
        page_size=page_size,
    )
    context = {
        "section": "collections",
        "summary": summary,
        "collection": collection,
        "result": result,
        "table": _table(collection, result),
        "statuses": STATUS_CHOICES,
        "base": _collection_url(collection),
        "partial": "hx-request" in request.headers
        and "hx-history-restore-request" not in request.headers,
    }
    partial = context["partial"]
    if not partial:
        return render(request, "collections/records.html", context)
    response = render(request, "collections/_table.html", context)
    # The address bar shows the table's own address, tidy whatever the form sent.
    response.headers["HX-Push-Url"] = context["table"].current_url
    return response


@router.get("/collections/{name}/export")
def export_page(
    request: Request,
    user: CurrentUser,
    name: str,
    format: str = "csv",
    archived: bool = False,
    search: str = "",
    sort: str = "",
    desc: bool = False,
    status: str | None = None,
) -> Response:
    """The records as the CLI's `collection export` writes them: CSV (opens in a spreadsheet)
    or a JSON array of objects keyed by field labels; with the table's filters, the records
    the table shows, in its order."""
    export = operation.export_collection(
        runtime_of(request).state,
        name,
        format,
        archived,
        search=search,
        status=status,
        sort_field=sort or None,
        descending=desc,
    )
    return StreamingResponse(
        export.chunks,
        media_type=export.media_type,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(export.filename)}"},
    )


@router.get("/collections/{name}/records/{record_id}")
def record_page(request: Request, user: CurrentUser, name: str, record_id: str) -> Response:
    runtime = runtime_of(request)
    imported = operation.show_record(runtime.state, runtime.store, name, record_id)
    record, collection = imported.record, imported.record.collection
    types = {field.label: field.type for field in collection.fields}
    context = {
        "section": "collections",
        "collection": collection,
        "record": record,
        "imported": imported,
        "values": [
            (field, shown(record.values.get(field.label), field.type))
            for field in collection.fields
        ],
        "history": [
            (
                entry,
                _history_value(entry.old, types.get(entry.field)),
                _history_value(entry.new, types.get(entry.field)),
            )
            for entry in imported.history
        ],
        "timeline": imported.timeline,
        "base": _collection_url(collection),
    }
    return render(request, "collections/record.html", context)


@dataclass(frozen=True)
class TableColumn:
    label: str
    numeric: bool
    sort_url: str
    sorted: str  # "", "asc" or "desc"


@dataclass(frozen=True)
class TableRow:
    id: str
    status: str
    cells: list[str]


@dataclass(frozen=True)
class Table:
    columns: list[TableColumn]
    rows: list[TableRow]
    previous_url: str
    next_url: str
    export_csv: str
    export_json: str
    first: int  # the rows shown, 1-based
    last: int
    current_url: str  # this page of this search and sort


def _table(collection: CollectionInfo, result: RecordPage) -> Table:
    base = _collection_url(collection)
    state = {
        "search": result.search,
        "sort": result.sort_field.label if result.sort_field else "",
        "desc": "1" if result.descending else "",
        "status": result.status,
        "size": "" if result.page_size == browse.DEFAULT_PAGE_SIZE else str(result.page_size),
    }

    def url(**changes: Any) -> str:
        query = {key: value for key, value in {**state, **changes}.items() if value}
        if query.get("page") == 1:
            del query["page"]
        return base + ("?" + urlencode(query) if query else "")

    columns = []
    for field in collection.fields:
        current = result.sort_field is not None and result.sort_field.id == field.id
        direction = ("desc" if result.descending else "asc") if current else ""
        # A click sorts by the column; a second click on it reverses the order.
        descending = current and not result.descending
        columns.append(
            TableColumn(
                field.label,
                field.type is FieldType.NUMBER,
                url(sort=field.label, desc="1" if descending else "", page=1),
                direction,
            )
        )
    rows = [
        TableRow(
            row.id, row.status, [shown(row.values.get(f.id), f.type) for f in collection.fields]
        )
        for row in result.rows
    ]
    first = (result.page - 1) * result.page_size + 1 if result.rows else 0
    # The export holds what the table shows, in its order (every page of it).
    filters = {key: state[key] for key in ("search", "sort", "desc", "status") if state[key]}
    return Table(
        columns=columns,
        rows=rows,
        previous_url=url(page=result.page - 1) if result.page > 1 else "",
        next_url=url(page=result.page + 1) if result.page < result.pages else "",
        export_csv=f"{base}/export?" + urlencode({"format": "csv", **filters}),
        export_json=f"{base}/export?" + urlencode({"format": "json", **filters}),
        first=first,
        last=first + len(rows) - 1 if rows else 0,
        current_url=url(page=result.page),
    )


def _collection_url(collection: CollectionInfo) -> str:
    return "/collections/" + quote(collection.name, safe="")


def _history_value(value: Value, field_type: FieldType | None) -> str:
    if value is None:
        return "(empty)"
    return shown(value, field_type) if field_type is not None else text(value)
