"""The logs REST API under /api/logs: search, histogram, facets, one event, a query, storage."""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from kandji_bridge.logs import search as logsearch
from kandji_bridge.logs.store import describe_damage
from kandji_bridge.operations.explorer import EventRow, search_events, view_event
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.errors_schema import Problem
from kandji_bridge.web.logs.results import csv_response, user_query
from kandji_bridge.web.logs.schemas import (
    FILTER_PARAMS,
    PAGE_SIZE,
    SELECT_FILTERS,
    AssetRecordOut,
    Bucket,
    DamagedPartOut,
    EventDetail,
    EventOut,
    EventsPage,
    HistogramOut,
    QueryIn,
    QueryOut,
    SearchParams,
    StorageOut,
)

api = APIRouter(tags=["logs"])


@api.get("/logs/events", summary="Search events")
def list_events(
    request: Request,
    principal: CurrentUser,
    params: Annotated[SearchParams, Query()],
    limit: Annotated[int, Query(ge=1, le=logsearch.MAX_LIMIT)] = PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
    cursor: str | None = None,
) -> EventsPage:
    """Matching events, newest first; page with `offset` or with the returned `next_cursor`."""
    runtime = runtime_of(request)
    found = search_events(
        runtime.store, runtime.state, params.query(), limit=limit, offset=offset, cursor=cursor
    )
    return EventsPage(
        events=[_event_out(row) for row in found.rows],
        offset=found.page.offset,
        limit=limit,
        has_more=found.page.has_more,
        next_cursor=found.page.next_cursor,
    )


@api.get("/logs/histogram", summary="Events over time")
def events_histogram(
    request: Request,
    principal: CurrentUser,
    params: Annotated[SearchParams, Query()],
    buckets: Annotated[int, Query(ge=1, le=500)] = 60,
) -> HistogramOut:
    """Matching events per time bucket; the bucket size fits the range into about `buckets`.

    A text (`q`) is matched in every event of the range, which takes seconds over a year of a big
    tenant: it runs as one of your queries, under the query time limit and the caps (429 when
    you already run as many as one user may)."""
    query = params.query()
    counts = logsearch.histogram(runtime_of(request).store, query, buckets, user=principal.user.id)
    return HistogramOut(
        bucket_seconds=logsearch.bucket_seconds(query.start, query.end, buckets),
        total=sum(n for _, n in counts),
        buckets=[Bucket(start=start, count=n) for start, n in counts],
    )


@api.get("/logs/facets", summary="Event facets")
def event_facets(
    request: Request, principal: CurrentUser, params: Annotated[SearchParams, Query()]
) -> dict[str, list[str]]:
    """The distinct eventName, action, actorType and targetType values within the range."""
    found = logsearch.facets(runtime_of(request).store, params.query())
    return {param: found[FILTER_PARAMS[param]] for param, _ in SELECT_FILTERS}


@api.get("/logs/events/{event_id}", summary="Get an event")
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
    summary="Run a SQL query",
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


def _event_out(named: EventRow) -> EventOut:
    row = named.event
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
        source=named.source,
        actorName=named.actor.display,
        actorKind=named.actor.kind,
        viewed=named.viewed,
    )


@api.get("/logs/storage", summary="Log store damage")
def api_storage(request: Request, principal: CurrentUser) -> StorageOut:
    """Damaged parts of the log store: moved aside by the engine, their events missing."""
    parts = runtime_of(request).store.damaged_parts()
    return StorageOut(
        damaged_parts=[DamagedPartOut(**vars(part)) for part in parts],
        notice=describe_damage(parts),
    )
