"""Logs: the explorer, one event, and the SQL page, plus the same under /api/logs.

The explorer is a GET form (a shareable URL holds the whole search); htmx re-renders only the
histogram and the result table (and the filter selects, out of band) and pushes the URL.
The SQL page runs read-only statements through the store's `user_query` (the guard, the limits
and the caps of `logs.sql_guard` and `logs.user_queries`); its CSV download reruns the statement
without the page's row limit. These handlers are plain `def`s: FastAPI runs them in its thread
pool, so a query never holds the event loop, and the caps keep queries from taking every thread.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from kandji_bridge.logs import search as logsearch
from kandji_bridge.logs.schema import COLUMNS
from kandji_bridge.logs.search import SearchError, SearchQuery
from kandji_bridge.logs.sql_guard import QueryRefused
from kandji_bridge.logs.store import describe_damage
from kandji_bridge.logs.user_queries import QueryBusy, QueryCancelled
from kandji_bridge.operations import queries
from kandji_bridge.operations.explorer import explore_logs, view_event
from kandji_bridge.operations.queries import QueryAnswer
from kandji_bridge.web.auth import CurrentUser, Principal, runtime_of
from kandji_bridge.web.errors_schema import Problem
from kandji_bridge.web.templating import render

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["logs"])

PAGE_SIZE = 50
SQL_ROW_LIMIT = 500
RANGES = {
    "1h": ("Last 1 hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
DEFAULT_RANGE = "24h"
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">, read as UTC
# URL parameter -> SearchQuery field; the parameter names are the column names users know.
FILTER_PARAMS = {
    "eventName": "event_name",
    "action": "action",
    "actorType": "actor_type",
    "targetType": "target_type",
    "sourceID": "source_id",
    "targetId": "target_id",
}
SELECT_FILTERS = (
    ("eventName", "eventName"),
    ("action", "action"),
    ("actorType", "actorType"),
    ("targetType", "targetType"),
)
EXAMPLE_QUERIES = (
    (
        "Events per eventName in the last 7 days",
        "SELECT eventName, count() AS events\nFROM kandji_logs\n"
        "WHERE eventTime >= now() - INTERVAL 7 DAY\nGROUP BY eventName\nORDER BY events DESC",
    ),
    (
        "Countries of source IPs",
        "SELECT srcASCountryCode AS country, count() AS events, uniq(srcIP) AS addresses\n"
        "FROM kandji_logs\nWHERE srcIP != ''\nGROUP BY country\nORDER BY events DESC",
    ),
    (
        "Most active actors in the last 30 days",
        "SELECT actor['email'] AS email, actorType, count() AS events\nFROM kandji_logs\n"
        "WHERE eventTime >= now() - INTERVAL 30 DAY\nGROUP BY email, actorType\n"
        "ORDER BY events DESC\nLIMIT 20",
    ),
    (
        "Recovery keys viewed",
        "SELECT eventTime, actor['email'] AS actor, targetId, tags['target_name'] AS device\n"
        "FROM kandji_logs\nWHERE action ILIKE '%recovery%'\nORDER BY eventTime DESC\nLIMIT 100",
    ),
    ("The table's columns", "DESCRIBE TABLE kandji_logs"),
)


# -- The explorer ------------------------------------------------------------------------------


@dataclass
class ExplorerForm:
    """The explorer's parameters as typed, the query they make, and field errors."""

    values: dict[str, str]
    errors: dict[str, str]
    query: SearchQuery | None
    page: int


def read_form(params: dict[str, str], now: datetime | None = None) -> ExplorerForm:
    values = {key: params.get(key, "").strip() for key in ("range", "from", "to", "q", "page")}
    values.update({param: params.get(param, "").strip() for param in FILTER_PARAMS})
    values["range"] = values["range"] if values["range"] in (*RANGES, "custom") else DEFAULT_RANGE
    errors: dict[str, str] = {}
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    if values["range"] == "custom":
        start = _parse_local(values["from"], "from", errors)
        end = _parse_local(values["to"], "to", errors) if values["to"] else now
        if start and end and start >= end:
            errors["to"] = "The end is before the start; pick an end after the start."
    else:
        start, end = logsearch.last(RANGES[values["range"]][1], now)
    page = int(values["page"]) if values["page"].isdigit() and int(values["page"]) > 0 else 1
    query = None
    if not errors and start and end:
        filters = {FILTER_PARAMS[param]: values[param] for param in FILTER_PARAMS}
        query = SearchQuery(start=start, end=end, text=values["q"], **filters)
    return ExplorerForm(values=values, errors=errors, query=query, page=page)


def _parse_local(text: str, name: str, errors: dict[str, str]) -> datetime | None:
    if not text:
        errors[name] = "Pick a date and time (UTC) for a custom range."
        return None
    for pattern in (LOCAL_FORMAT, LOCAL_FORMAT + ":%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    errors[name] = "Write the time as YYYY-MM-DDTHH:MM (UTC)."
    return None


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    start: datetime
    count: int
    link: str


def histogram_bars(
    buckets: list[tuple[datetime, int]], size: int, params: dict[str, str], height: int = 120
) -> list[Bar]:
    """The SVG bars (in a 1000 x height viewBox); a bar links to its own time range."""
    if not buckets:
        return []
    top = max(count for _, count in buckets) or 1
    width = 1000 / len(buckets)
    bars = []
    for index, (start, count) in enumerate(buckets):
        bar_height = count / top * (height - 4)
        zoom = {
            **{k: v for k, v in params.items() if v and k not in ("page", "range", "from", "to")},
            "range": "custom",
            "from": start.strftime(LOCAL_FORMAT),
            "to": (start + timedelta(seconds=max(size, 60))).strftime(LOCAL_FORMAT),
        }
        bars.append(
            Bar(
                x=index * width + 0.5,
                y=height - bar_height,
                width=max(width - 1, 0.5),
                height=bar_height,
                start=start,
                count=count,
                link="/logs?" + urlencode(zoom),
            )
        )
    return bars


def _explorer_context(request: Request) -> tuple[dict[str, Any], int]:
    store = runtime_of(request).store
    params = dict(request.query_params)
    form = read_form(params)
    context: dict[str, Any] = {
        "section": "logs",
        "values": form.values,
        "errors": form.errors,
        "ranges": RANGES,
        "select_filters": SELECT_FILTERS,
        "facets": {},
        "rows": [],
        "bars": [],
        "total": 0,
        "page": form.page,
        "has_more": False,
        "page_links": {},
    }
    if form.query is None:
        return context, 400
    query = form.query
    try:
        found = explore_logs(store, query, limit=PAGE_SIZE, offset=(form.page - 1) * PAGE_SIZE)
    except SearchError as exc:
        context["errors"] = {"": str(exc)}
        return context, 400
    buckets, size = found.buckets, found.bucket_seconds
    context.update(
        {
            "facets": {param: found.facets[FILTER_PARAMS[param]] for param, _ in SELECT_FILTERS},
            "rows": found.page.rows,
            "bars": histogram_bars(buckets, size, form.values),
            "bucket_label": _duration(size),
            "range_label": f"{query.start:%Y-%m-%d %H:%M} to {query.end:%Y-%m-%d %H:%M} UTC",
            "first_bucket": buckets[0][0] if buckets else None,
            "last_bucket": buckets[-1][0] if buckets else None,
            "max_count": max((n for _, n in buckets), default=0),
            "total": sum(n for _, n in buckets),
            "has_more": found.page.has_more,
            "page_links": {
                "previous": _page_url(form.values, form.page - 1) if form.page > 1 else "",
                "next": _page_url(form.values, form.page + 1) if found.page.has_more else "",
            },
        }
    )
    return context, 200


def _page_url(values: dict[str, str], page: int) -> str:
    kept = {key: value for key, value in values.items() if value and key != "page"}
    if page > 1:
        kept["page"] = str(page)
    return "/logs?" + urlencode(kept)


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


@pages.get("/logs")
def explorer_page(request: Request, principal: CurrentUser) -> Response:
    context, status = _explorer_context(request)
    partial = "hx-request" in request.headers and "hx-history-restore-request" not in (
        request.headers
    )
    context["oob"] = partial  # the filter selects are re-rendered out of band
    template = "logs/_results.html" if partial else "logs/explorer.html"
    return render(request, template, context, status_code=200 if partial else status)


# -- One event ---------------------------------------------------------------------------------


def pretty_json(text: str) -> str:
    """Indented JSON for display; text that is not JSON is shown as stored."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return text


@pages.get("/logs/events/{event_id}")
def event_page(request: Request, principal: CurrentUser, event_id: str) -> Response:
    runtime = runtime_of(request)
    view = view_event(runtime.store, runtime.state, event_id)
    event = view.columns
    fields = [(name, type_, event.get(name)) for name, type_ in COLUMNS]
    context = {
        "section": "logs",
        "event": event,
        "fields": fields,
        "raw_pretty": pretty_json(str(event.get("rawLog", ""))),
        "json_columns": {"newState", "metadata"},
        "pretty_json": pretty_json,
        "assets": view.assets,
    }
    return render(request, "logs/event.html", context)


# -- SQL ---------------------------------------------------------------------------------------


@pages.get("/logs/sql")
def sql_page(request: Request, principal: CurrentUser, q: str = "") -> Response:
    context: dict[str, Any] = {
        "section": "sql",
        "values": {"q": q},
        "examples": [(title, sql, _sql_url(sql)) for title, sql in EXAMPLE_QUERIES],
        "result": None,
        "truncated": False,
        "limit": SQL_ROW_LIMIT,
        "csv_url": "",
    }
    status = 200
    if q.strip():
        try:
            answer = user_query(request, principal, q, SQL_ROW_LIMIT)
        except (QueryRefused, QueryBusy, QueryCancelled) as exc:
            context["errors"] = {"q": str(exc)}
            status = query_error_status(exc)
        else:
            context.update(
                {
                    "result": _display(answer),
                    "truncated": answer.truncated,
                    "csv_url": "/logs/sql.csv?" + urlencode({"q": q}),
                }
            )
    if "hx-request" in request.headers and "hx-history-restore-request" not in request.headers:
        return render(request, "logs/_sql_result.html", context)  # htmx swaps 200s only
    return render(request, "logs/sql.html", context, status_code=status)


def user_query(request: Request, principal: Principal, sql: str, limit: int | None) -> QueryAnswer:
    """The SQL a person typed, run as theirs: the caps count queries per user id."""
    return queries.run_query(runtime_of(request).store, sql, user=principal.user.id, limit=limit)


def query_error_status(exc: Exception) -> int:
    """429 past the caps, 503 while the service stops, 400 for the query itself."""
    return 429 if isinstance(exc, QueryBusy) else 503 if isinstance(exc, QueryCancelled) else 400


def _sql_url(sql: str) -> str:
    return "/logs/sql?" + urlencode({"q": sql})


def _display(answer: QueryAnswer) -> QueryAnswer:
    """Cells as text: maps, arrays and tuples as JSON, None as empty."""
    rows = [[_cell(value) for value in row] for row in answer.rows]
    return QueryAnswer(answer.columns, answer.types, rows, answer.truncated)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_response(result: QueryAnswer) -> StreamingResponse:
    """The whole result as CSV with a header row, as a download."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(result.columns)
        for index, row in enumerate(result.rows, 1):
            writer.writerow([_cell(value) for value in row])
            if index % 1000 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="kandji_logs-query.csv"'},
    )


@pages.get("/logs/sql.csv")
def sql_csv(request: Request, principal: CurrentUser, q: str = "") -> Response:
    return csv_response(user_query(request, principal, q, None))


# -- REST API ----------------------------------------------------------------------------------


class EventOut(BaseModel):
    id: str
    eventTime: datetime
    eventName: str
    action: str
    actorType: str
    actor: str = Field(description="The actor's email, else name, else id, else type.")
    targetType: str
    targetId: str
    target: str = Field(description="The target's name when the event carries one, else its id.")
    srcIP: str
    srcASCountryCode: str
    sourceID: str


class EventsPage(BaseModel):
    events: list[EventOut]
    offset: int
    limit: int
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")


class Bucket(BaseModel):
    start: datetime
    count: int


class HistogramOut(BaseModel):
    bucket_seconds: int
    total: int
    buckets: list[Bucket]


class AssetRecordOut(BaseModel):
    collection: str
    mapping: str
    record_id: str
    url: str


class EventDetail(BaseModel):
    columns: dict[str, Any] = Field(description="Every column of kandji_logs, by name.")
    asset_records: list[AssetRecordOut] = Field(
        description="For a device target: its records in the collections a mapping fills."
    )


class QueryIn(BaseModel):
    sql: str = Field(description="One read-only statement (SELECT, WITH, SHOW, DESCRIBE, ...).")
    limit: int | None = Field(
        default=1000, ge=1, description="At most this many rows; null for the whole result."
    )
    format: Literal["json", "csv"] = "json"


class QueryOut(BaseModel):
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]
    truncated: bool = Field(description="True when the result had more rows than `limit`.")


class SearchParams(BaseModel):
    """The explorer's filters as query parameters (default range: the last 24 hours)."""

    start: datetime | None = Field(
        None, alias="from", description="Range start (ISO 8601, with its offset)."
    )
    end: datetime | None = Field(
        None, alias="to", description="Range end (ISO 8601, with its offset); now."
    )
    q: str = Field("", description="Case-insensitive text to find in rawLog.")
    eventName: str = ""
    action: str = ""
    actorType: str = ""
    targetType: str = ""
    sourceID: str = ""
    targetId: str = ""

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso_date_time(cls, value: object) -> object:
        """Only what the schema says: an ISO 8601 date and time with its UTC offset, not the
        Unix timestamps or bare dates pydantic would otherwise take."""
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None or "T" not in value.upper():
            raise ValueError(
                "give an ISO 8601 date and time with its offset, like 2025-03-01T09:30:00Z"
            )
        return parsed

    def query(self) -> SearchQuery:
        end = self.end or datetime.now(UTC).replace(microsecond=0)
        start = self.start or end - RANGES[DEFAULT_RANGE][1]
        filters = {field: getattr(self, param) for param, field in FILTER_PARAMS.items()}
        return SearchQuery(start=start, end=end, text=self.q, **filters)


@api.get("/logs/events")
def list_events(
    request: Request,
    principal: CurrentUser,
    params: Annotated[SearchParams, Query()],
    limit: Annotated[int, Query(ge=1, le=logsearch.MAX_LIMIT)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
    cursor: str | None = None,
) -> EventsPage:
    """Matching events, newest first; page with `offset` or with the returned `next_cursor`."""
    found = logsearch.search(runtime_of(request).store, params.query(), limit, offset, cursor)
    return EventsPage(
        events=[_event_out(row) for row in found.rows],
        offset=found.offset,
        limit=limit,
        has_more=found.has_more,
        next_cursor=found.next_cursor,
    )


@api.get("/logs/histogram")
def events_histogram(
    request: Request,
    principal: CurrentUser,
    params: Annotated[SearchParams, Query()],
    buckets: Annotated[int, Query(ge=1, le=500)] = 60,
) -> HistogramOut:
    """Matching events per time bucket; the bucket size fits the range into about `buckets`."""
    query = params.query()
    counts = logsearch.histogram(runtime_of(request).store, query, buckets)
    return HistogramOut(
        bucket_seconds=logsearch.bucket_seconds(query.start, query.end, buckets),
        total=sum(n for _, n in counts),
        buckets=[Bucket(start=start, count=n) for start, n in counts],
    )


@api.get("/logs/facets")
def event_facets(
    request: Request, principal: CurrentUser, params: Annotated[SearchParams, Query()]
) -> dict[str, list[str]]:
    """The distinct eventName, action, actorType and targetType values within the range."""
    found = logsearch.facets(runtime_of(request).store, params.query())
    return {param: found[FILTER_PARAMS[param]] for param, _ in SELECT_FILTERS}


@api.get("/logs/events/{event_id}")
def get_event(request: Request, principal: CurrentUser, event_id: str) -> EventDetail:
    """Every column of one event, and the asset records of its device target."""
    runtime = runtime_of(request)
    view = view_event(runtime.store, runtime.state, event_id)
    return EventDetail(
        columns=view.columns,
        asset_records=[
            AssetRecordOut(
                collection=link.collection,
                mapping=link.mapping,
                record_id=link.record_id,
                url=link.url,
            )
            for link in view.assets
        ],
    )


@api.post(
    "/logs/query",
    response_model=None,
    responses={
        200: {
            "model": QueryOut,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "The result: JSON, or CSV (a header row, then the rows).",
        },
        429: {"model": Problem, "description": "Too many queries of this user, or in all, run."},
        503: {"model": Problem, "description": "The service is stopping; the query was stopped."},
    },
)
def run_query(
    request: Request,
    principal: CurrentUser,
    body: QueryIn,
    format: Literal["json", "csv"] | None = None,
) -> QueryOut | StreamingResponse:
    """Run one read-only statement; `format=csv` (query or body) answers with CSV."""
    wanted = format or body.format
    limit = None if wanted == "csv" else body.limit
    answer = user_query(request, principal, body.sql, limit)
    if wanted == "csv":
        return csv_response(answer)
    return QueryOut(
        columns=answer.columns, types=answer.types, rows=answer.rows, truncated=answer.truncated
    )


def _event_out(row: logsearch.EventSummary) -> EventOut:
    return EventOut(
        id=row.id,
        eventTime=row.event_time,
        eventName=row.event_name,
        action=row.action,
        actorType=row.actor_type,
        actor=row.actor,
        targetType=row.target_type,
        targetId=row.target_id,
        target=row.target,
        srcIP=row.src_ip,
        srcASCountryCode=row.country,
        sourceID=row.source_id,
    )


class DamagedPartOut(BaseModel):
    table: str = Field(description="kandji_logs or kandji_logs_quarantine.")
    name: str = Field(description="The part's folder name, with the engine's reason prefix.")
    reason: str = Field(description="Why the engine moved it aside: broken-on-start, ...")
    path: str = Field(description="Where the part was moved.")
    partition: str = Field(description="kandji_logs: the month of its events, YYYYMM.")
    rows: int | None = Field(description="Rows in the part, when the store can read its count.")


class StorageOut(BaseModel):
    damaged_parts: list[DamagedPartOut]
    notice: str | None = Field(description="What happened and how to recover; null when healthy.")


@api.get("/logs/storage")
def api_storage(request: Request, principal: CurrentUser) -> StorageOut:
    """Damaged parts of the log store: moved aside by the engine, their events missing."""
    parts = runtime_of(request).store.damaged_parts()
    return StorageOut(
        damaged_parts=[DamagedPartOut(**vars(part)) for part in parts],
        notice=describe_damage(parts),
    )
