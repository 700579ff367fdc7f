"""Logs pages: the explorer, one event, and the SQL page.

The explorer is a GET form (a shareable URL holds the whole search); htmx re-renders only the
histogram and the result table (and the filter selects, out of band) and pushes the URL.
The SQL page runs read-only statements through `operations.queries.run_query` (the guard, the
limits and the caps of `logs.sql_guard` and `logs.user_queries`); its CSV download reruns the
statement without the page's row limit. These handlers are plain `def`s: FastAPI runs them in its
thread pool, so a query never holds the event loop, and the caps keep queries from taking every
thread.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kandji_bridge.logs import search as logsearch
from kandji_bridge.logs.schema import COLUMNS
from kandji_bridge.logs.search import Histogram, SearchError, SearchQuery
from kandji_bridge.logs.sql_guard import (
    OUTSIDE_READING_FUNCTIONS,
    SAFE_TABLE_FUNCTIONS,
    QueryRefused,
)
from kandji_bridge.logs.user_queries import QueryBusy, QueryCancelled
from kandji_bridge.operations.explorer import explore_logs, view_event
from kandji_bridge.operations.queries import QueryAnswer
from kandji_bridge.web.auth import CurrentUser, Principal, runtime_of
from kandji_bridge.web.logs.results import cell_text, csv_response, query_error_status, user_query
from kandji_bridge.web.logs.schemas import (
    DEFAULT_RANGE,
    FILTER_PARAMS,
    PAGE_SIZE,
    RANGES,
    SELECT_FILTERS,
)
from kandji_bridge.web.templating import render

pages = APIRouter(include_in_schema=False)

SQL_ROW_LIMIT = 500
LOCAL_FORMAT = "%Y-%m-%dT%H:%M"  # <input type="datetime-local">, read as UTC
# Each title says what its rows are; tests run every one against a store the simulator filled.
# Kandji records a look at a device secret as action `view`, the secret in targetComponent.
EXAMPLE_QUERIES = (
    (
        "Events per eventName in the last 7 days",
        "SELECT eventName, count() AS events\nFROM kandji_logs\n"
        "WHERE eventTime >= now() - INTERVAL 7 DAY\nGROUP BY eventName\nORDER BY events DESC",
    ),
    (
        "Countries of source IPs",
        "SELECT srcASCountryCode AS country, count() AS events, uniq(srcIP) AS addresses\n"
        "FROM kandji_logs\nWHERE srcIP != '' AND srcASCountryCode != ''\nGROUP BY country\n"
        "ORDER BY events DESC",
    ),
    (
        "Most active actors in the last 30 days",
        "SELECT actorId, actorType, max(actor['email']) AS email, count() AS events\n"
        "FROM kandji_logs\nWHERE eventTime >= now() - INTERVAL 30 DAY AND actorId != ''\n"
        "GROUP BY actorId, actorType\nORDER BY events DESC\nLIMIT 20",
    ),
    (
        "FileVault recovery keys viewed",
        "SELECT eventTime, actorId, actorType, actor['email'] AS email, targetId AS device,\n"
        "  targetComponent\nFROM kandji_logs\n"
        "WHERE action = 'view' AND targetType = 'device'\n"
        "  AND targetComponent IN ('filevault_key', 'filevault', 'recovery_key')\n"
        "ORDER BY eventTime DESC\nLIMIT 100",
    ),
    (
        "Device secrets viewed, by kind",
        "SELECT targetComponent AS secret, count() AS views, uniq(actorId) AS viewers\n"
        "FROM kandji_logs\nWHERE action = 'view' AND targetType = 'device'\n"
        "GROUP BY secret\nORDER BY views DESC",
    ),
    (
        "API tokens created, changed or deleted",
        "SELECT eventTime, action, targetId AS token,\n"
        "  JSONExtractString(newState, 'label') AS label, actorId\nFROM kandji_logs\n"
        "WHERE targetType = 'api_token'\nORDER BY eventTime DESC\nLIMIT 100",
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
    values["count"] = "all" if params.get("count") == "all" else ""
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
    counted: bool = True


def histogram_bars(histogram: Histogram, params: dict[str, str], height: int = 120) -> list[Bar]:
    """The SVG bars (in a 1000 x height viewBox); a bar links to its own time range. A bucket
    not counted is a full-height shade, so it is not read as none."""
    buckets, size = histogram.buckets, histogram.bucket_seconds
    if not buckets:
        return []
    top = max(count for _, count in buckets) or 1
    width = 1000 / len(buckets)
    bars = []
    for index, (start, count) in enumerate(buckets):
        counted = histogram.counted_from is None or start >= histogram.counted_from
        bar_height = count / top * (height - 4) if counted else height
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
                counted=counted,
            )
        )
    return bars


def _explorer_context(request: Request, principal: Principal) -> tuple[dict[str, Any], int]:
    runtime = runtime_of(request)
    params = dict(request.query_params)
    form = read_form(params)
    context: dict[str, Any] = {
        "section": "logs",
        "values": form.values,
        "errors": form.errors,
        "ranges": RANGES,
        "select_filters": SELECT_FILTERS,
        "facets": {},
        "sources": [],
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
        found = explore_logs(
            runtime.store,
            runtime.state,
            query,
            limit=PAGE_SIZE,
            offset=(form.page - 1) * PAGE_SIZE,
            count_all=form.values["count"] == "all",
            user=principal.user.id,
        )
    except (SearchError, QueryBusy, QueryCancelled) as exc:
        context["errors"] = {"": str(exc)}
        return context, query_error_status(exc)
    histogram = found.histogram
    buckets = histogram.buckets
    context.update(
        {
            "facets": {param: found.facets[FILTER_PARAMS[param]] for param, _ in SELECT_FILTERS},
            "sources": found.sources,
            "rows": found.rows,
            "bars": histogram_bars(histogram, form.values),
            "bucket_label": _duration(histogram.bucket_seconds),
            "range_label": f"{query.start:%Y-%m-%d %H:%M} to {query.end:%Y-%m-%d %H:%M} UTC",
            "first_bucket": buckets[0][0] if buckets else None,
            "last_bucket": buckets[-1][0] if buckets else None,
            "max_count": max((n for _, n in buckets), default=0),
            "total": histogram.total,
            "counted_from": histogram.counted_from,
            "skipped": histogram.skipped,
            "count_all_url": "/logs?"
            + urlencode(
                {**{k: v for k, v in form.values.items() if v and k != "page"}, "count": "all"}
            ),
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
    context, status = _explorer_context(request, principal)
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
        "view": view,
    }
    return render(request, "logs/event.html", context)


# -- SQL ---------------------------------------------------------------------------------------


@pages.get("/logs/sql")
def sql_page(request: Request, principal: CurrentUser, q: str = "") -> Response:
    context: dict[str, Any] = {
        "section": "sql",
        "values": {"q": q},
        "examples": [(title, sql, _sql_url(sql)) for title, sql in EXAMPLE_QUERIES],
        "columns": COLUMNS,
        "refused_functions": sorted(OUTSIDE_READING_FUNCTIONS),
        "table_functions": sorted(SAFE_TABLE_FUNCTIONS),
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


def _sql_url(sql: str) -> str:
    return "/logs/sql?" + urlencode({"q": sql})


def _display(answer: QueryAnswer) -> QueryAnswer:
    """Cells as text: maps, arrays and tuples as JSON, None as empty."""
    rows = [[cell_text(value) for value in row] for row in answer.rows]
    return QueryAnswer(answer.columns, answer.types, rows, answer.truncated)


@pages.get("/logs/sql.csv")
def sql_csv(request: Request, principal: CurrentUser, q: str = "") -> Response:
    return csv_response(user_query(request, principal, q, None))
