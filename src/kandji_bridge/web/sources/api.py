"""The REST API under /api/sources: what the Sources pages do, for scripts."""

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from kandji_bridge import redact
from kandji_bridge import source_registry as sources
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.jobs import status as jobs
from kandji_bridge.operations.connection import SourceUses, source_uses
from kandji_bridge.operations.polling import sync_source
from kandji_bridge.operations.sources import (
    SourceHealth,
    add_source,
    all_health,
    check_new_source,
    one_health,
    remove_source,
    update_source,
    verify_token,
)
from kandji_bridge.operations.verify import VerifyReport
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.sources.schemas import (
    FIRST_SYNC,
    NO_SCHEDULER,
    CheckOut,
    Created,
    PassOut,
    PollOut,
    PollRequest,
    SourceCreate,
    SourceOut,
    SourceUpdate,
    Updated,
    VerifyOut,
    VerifyRequest,
    check_views,
    refusal,
)

api = APIRouter(tags=["sources"])


def _out(health: SourceHealth, uses: dict[str, SourceUses]) -> SourceOut:
    info = health.source
    used = uses.get(info.id)
    return SourceOut(
        display_name=info.display_name,
        permissions=used.permission_labels if used and info.permissions is not None else None,
        used_by=list(dict.fromkeys(use.pipeline for use in used.uses)) if used else [],
        id=info.id,
        name=info.name,
        api_url=info.api_url,
        poll_interval=info.poll_interval_seconds,
        retention_days=info.retention_days,
        logs_enabled=info.logs_enabled,
        created_at=info.created_at,
        status=health.status,
        running=health.running,
        last_poll_at=health.last_poll_at,
        last_success_at=health.last_success_at,
        lag_seconds=health.lag_seconds,
        lag_basis=health.lag_basis,
        events_ingested=health.events_ingested,
        quarantined_events=health.quarantined_events,
        last_error=health.last_error,
    )


def _verify_out(report: VerifyReport) -> VerifyOut:
    why = refusal(report)
    return VerifyOut(
        ok=report.ok,
        can_collect_logs=why is None,
        api_url=report.api_url.base_url if report.api_url else None,
        api_url_note=report.api_url.note if report.api_url else None,
        problem=why,
        checks=[CheckOut(**vars(view)) for view in check_views(report)],
    )


@api.get("/sources", summary="List sources")
def api_list_sources(request: Request, principal: CurrentUser) -> list[SourceOut]:
    """Every source with its status, last poll, lag, events ingested and quarantined."""
    runtime = runtime_of(request)
    uses = _uses(runtime.state)
    return [_out(health, uses) for health in all_health(runtime.state, runtime.store)]


@api.get("/sources/{name}", summary="Get a source")
def api_get_source(request: Request, principal: CurrentUser, name: str) -> SourceOut:
    runtime = runtime_of(request)
    return _out(one_health(runtime.state, runtime.store, name), _uses(runtime.state))


@api.post("/sources/verify", summary="Verify a URL and token")
def api_verify(request: Request, principal: CurrentUser, body: VerifyRequest) -> VerifyOut:
    """Check a URL and token: the URL, the token, and each permission, without saving anything."""
    settings = runtime_of(request).settings
    return _verify_out(verify_token(settings, body.url, body.token.get_secret_value()))


@api.post(
    "/sources",
    summary="Add a source",
    status_code=201,
    response_model=Created,
    responses={400: {"description": "Bad input, or the verify failed: nothing was saved."}},
)
def api_create_source(
    request: Request, principal: CurrentUser, body: SourceCreate
) -> Created | Response:
    """Add a source; verified first unless `verify` is false. Its first poll starts at once."""
    runtime = runtime_of(request)
    token = body.token.get_secret_value()
    redact.remember(token.strip())
    new, errors = check_new_source(
        runtime.settings,
        runtime.state,
        body.name,
        body.api_url,
        token,
        body.poll_interval,
        body.retention_days,
    )
    if errors or new is None:
        detail = " ".join(errors.values())
        return JSONResponse({"detail": detail, "errors": errors}, status_code=400)
    checked = None
    report = None
    if body.verify:
        report = verify_token(runtime.settings, new.api_url.base_url, new.token)
        checked = _verify_out(report)
        if checked.problem is not None:
            detail = f"Source {new.name} was not saved: {checked.problem}"
            content = {"detail": detail, "verify": checked.model_dump(mode="json")}
            return JSONResponse(content, status_code=400)
    info = add_source(runtime.state, new, runtime.jobs, report)
    first = FIRST_SYNC if runtime.jobs.background else NO_SCHEDULER
    return Created(
        source=_out(one_health(runtime.state, runtime.store, info.name), _uses(runtime.state)),
        api_url_note=new.api_url.note,
        verify=checked,
        message=f"Source {info.name} was added, reading {info.api_url}. {first}",
    )


@api.patch("/sources/{name}", summary="Edit a source")
def api_update_source(
    request: Request, principal: CurrentUser, name: str, body: SourceUpdate
) -> Updated:
    """Edit a source: rotate its token (verified first: a token Kandji refuses, or one lacking a
    permission the source's log collection or mappings use, changes nothing), its poll interval,
    its retention (applied to the events already stored too) or its display name. The checkpoint
    and the stored events stay."""
    runtime = runtime_of(request)
    token = body.token.get_secret_value() if body.token is not None else None
    if token is not None:
        redact.remember(token.strip())
    result = update_source(
        runtime.settings,
        runtime.state,
        runtime.store,
        name,
        token=token,
        poll_interval=body.poll_interval,
        retention_days=body.retention_days,
        display_name=body.display_name,
    )
    health = one_health(runtime.state, runtime.store, result.source.name)
    changed = ", ".join(result.changed) or "nothing"
    return Updated(
        source=_out(health, _uses(runtime.state)),
        changed=result.changed,
        verify=_verify_out(result.report) if result.report is not None else None,
        message=f"Source {result.source.name} was updated ({changed}).",
    )


def _uses(state: StateDB) -> dict[str, SourceUses]:
    return {uses.source.id: uses for uses in source_uses(state)}


@api.delete(
    "/sources/{name}",
    summary="Remove a source",
    status_code=204,
    responses={200: {"description": 'With delete_events: {"events_deleted": N}.'}},
)
def api_remove_source(
    request: Request, principal: CurrentUser, name: str, delete_events: bool = False
) -> Response:
    """Remove a source and its token; refused while a mapping uses it. Stored events stay,
    unless `delete_events` is true: then they are deleted too and the answer counts them."""
    runtime = runtime_of(request)
    store = runtime.store if delete_events else None
    removed = remove_source(runtime.state, name, delete_events_from=store)
    if not delete_events:
        return Response(status_code=204)
    return JSONResponse({"events_deleted": removed.events_deleted})


# A plain poll's answer stays {queued, error}: `result` is there only for a pass run in the request.
@api.post("/sources/{name}/poll", summary="Poll a source now", response_model_exclude_unset=True)
def api_poll_source(
    request: Request, principal: CurrentUser, name: str, body: PollRequest | None = None
) -> PollOut:
    """Poll now: queued on the scheduler, or run in the request when background jobs are off.
    With a period (`start`, `end`: a resync) or `backfill_days` (a first sync's backfill), the
    pass runs in the request and the answer says what it stored."""
    runtime = runtime_of(request)
    if body is None or (body.start is None and body.end is None and body.backfill_days is None):
        outcome = runtime.jobs.trigger(jobs.source_job(sources.get_source(runtime.state, name).id))
        return PollOut(queued=outcome.queued, error=outcome.error)
    result = sync_source(
        runtime.settings,
        runtime.state,
        runtime.store,
        runtime.enricher,
        name,
        backfill_days=body.backfill_days,
        window=_window(body),
    )
    passed = PassOut(**{key: getattr(result, key) for key in PassOut.model_fields})
    return PollOut(queued=False, error=None, result=passed)


def _window(body: PollRequest) -> tuple[datetime, datetime] | None:
    """The resync's period in UTC, None for a plain pass."""
    if body.start is None:
        if body.end is not None:
            raise BridgeError("An end was given without a start; give the period's start too.")
        return None
    if body.backfill_days is not None:
        raise BridgeError(
            "A period and backfill_days were both given; a resync collects its period only, "
            "so give one of them."
        )
    start, end = (
        moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        for moment in (body.start, body.end or datetime.now(UTC))
    )
    if start >= end:
        raise BridgeError(
            "The period's start is not before its end; give a start that comes first."
        )
    return start, end
