"""Sources: connect a Kandji tenant as RunReveal's flow does, watch each source's health.

The flow is Sources → Add Source → the Kandji tile → a name → Connect Source → API URL and token →
Verify (the per-permission checklist, swapped in place by htmx, or a page of its own without
JavaScript) → Save. Save verifies again on the server: a source whose URL, token or "List audit
events" permission fails is never saved. The token is write-only: it is read from the form, sent
to Kandji and encrypted into the state DB, and never rendered, returned or logged.

The REST API under /api/sources does the same for scripts.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, SecretStr

from kandji_bridge import redact
from kandji_bridge import source_registry as sources
from kandji_bridge.db.models import utcnow
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.jobs import status as jobs
from kandji_bridge.jobs.runner import JobOutcome
from kandji_bridge.kandji import permissions
from kandji_bridge.logs.collector import CLOCK_SKEW
from kandji_bridge.logs.store import describe_damage
from kandji_bridge.operations.sources import (
    NO_TOKEN,
    REQUIRED_CHECKS,
    add_source,
    blocking_check,
    check_new_source,
    name_error,
    verify_token,
)
from kandji_bridge.operations.verify import VerifyReport
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.templating import FormErrors, render

pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["sources"])

AUDIT = permissions.AUDIT_EVENTS.label
KANDJI_DESCRIPTION = (
    "Collect audit logs from your Kandji account to monitor device management actions and "
    "administrative changes. kandji-bridge polls the Kandji audit events API every 60 seconds."
)
AUDIT_EXPLANATION = (
    "Kandji tokens have no permissions by default. You must explicitly grant List audit events "
    "or kandji-bridge will receive a permission error when it tries to connect — even if the URL "
    "and token are otherwise correct. In Kandji go to Settings → Access, open the token and "
    "confirm List audit events is checked; if you're unsure what permissions were set, delete the "
    "token and create a new one."
)
FIRST_SYNC = (
    "Logs begin appearing within a minute. Historical audit events are backfilled on the first "
    "sync."
)
NO_SCHEDULER = (
    "Background jobs are not running in this process, so sources are not polled on their own; "
    "use Poll now on a source's page, or run `kandji-bridge serve`."
)
QUARANTINE_SHOWN = 20

# -- What the pages and the API show ---------------------------------------------------------


@dataclass(frozen=True)
class SourceHealth:
    """A source with how its polling goes, for the list, its page and the API."""

    source: sources.SourceInfo
    status: str  # "ok", "failing", "never polled" or "not polled" (logs not enabled)
    running: bool
    last_poll_at: datetime | None  # when the last poll started
    last_success_at: datetime | None
    lag_seconds: int | None
    lag_basis: str | None  # "last successful poll" or "newest stored event"
    events_ingested: int
    quarantined_events: int
    last_error: str | None

    @property
    def badge(self) -> str:
        return {"ok": "ok", "failing": "bad", "never polled": "warn"}.get(self.status, "")


def source_health(
    runtime: Runtime, info: sources.SourceInfo, status: jobs.JobStatusInfo | None
) -> SourceHealth:
    """How `info` is doing, from its job status (any process's) and the log store."""
    now = utcnow()
    events = runtime.store.count(info.id)
    if not info.logs_enabled:
        state = "not polled"
    elif status is None or status.runs == 0:
        state = "never polled"
    else:
        state = "failing" if status.last_error else "ok"
    lag, basis = None, None
    if status is not None and status.last_success_at is not None:
        lag, basis = _seconds(now - status.last_success_at), "last successful poll"
    elif events:
        # Collected by `logs sync`, say, but never by a scheduler: how old the newest event is.
        checkpoint = runtime.store.latest_checkpoint(info.id, not_after=now + CLOCK_SKEW)
        if checkpoint is not None:
            lag, basis = _seconds(now - checkpoint.event_time), "newest stored event"
    return SourceHealth(
        source=info,
        status=state,
        running=bool(status and status.running),
        last_poll_at=status.last_started_at if status else None,
        last_success_at=status.last_success_at if status else None,
        lag_seconds=lag,
        lag_basis=basis,
        events_ingested=events,
        quarantined_events=runtime.store.quarantine_count(info.id),
        last_error=status.last_error if status else None,
    )


def _seconds(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds()))


def all_health(runtime: Runtime) -> list[SourceHealth]:
    statuses = jobs.job_statuses(runtime.state)
    return [
        source_health(runtime, info, statuses.get(jobs.source_job(info.id)))
        for info in sources.list_sources(runtime.state)
    ]


def one_health(runtime: Runtime, name: str) -> SourceHealth:
    info = sources.get_source(runtime.state, name)
    status = jobs.job_statuses(runtime.state).get(jobs.source_job(info.id))
    return source_health(runtime, info, status)


@dataclass(frozen=True)
class CheckView:
    name: str
    ok: bool | None
    detail: str
    required: bool

    @property
    def role(self) -> str:
        if self.name == AUDIT:
            return "required to collect audit logs"
        return "required" if self.required else "optional: needed only for device import"


def check_views(report: VerifyReport) -> list[CheckView]:
    return [
        CheckView(check.name, check.ok, check.detail, check.name in REQUIRED_CHECKS)
        for check in report.checks
    ]


def refusal(report: VerifyReport) -> str | None:
    """Why a source with this report must not be saved (URL, token or audit permission), or None."""
    first = blocking_check(report)
    if first is None:
        return None
    if first.name == AUDIT:
        return f"{AUDIT_EXPLANATION} ({first.detail})"
    return first.detail


def _whole_number(text: str, default: int) -> int | None:
    text = text.strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        return None


def poll_now(runtime: Runtime, info: sources.SourceInfo) -> JobOutcome:
    """Poll the source: queued on the scheduler, or run here when there is none (its error, if
    it failed, is recorded in the job status either way)."""
    return runtime.jobs.trigger(jobs.source_job(info.id))


# -- Pages ------------------------------------------------------------------------------------


@pages.get("/sources")
def list_page(
    request: Request, principal: CurrentUser, added: str = "", removed: str = ""
) -> Response:
    runtime = runtime_of(request)
    health = all_health(runtime)
    message = ""
    if added:
        found = next((h.source for h in health if h.source.name == added), None)
        if found is not None:
            # Without a scheduler the page's own banner says how to poll.
            first = f" {FIRST_SYNC}" if runtime.jobs.background else ""
            message = f"Source {found.name} was added, reading {found.api_url}.{first}"
    elif removed and all(h.source.name != removed for h in health):
        message = f"Source {removed} was removed; its stored events stay in the log store."
    context = {
        "section": "sources",
        "sources": health,
        "message": message,
        "scheduler_running": runtime.jobs.background,
        "store_notice": describe_damage(runtime.store.damaged_parts()),
    }
    return render(request, "sources/list.html", context)


@pages.get("/sources/new")
def source_types_page(request: Request, principal: CurrentUser) -> Response:
    return render(
        request, "sources/types.html", {"section": "sources", "description": KANDJI_DESCRIPTION}
    )


@pages.get("/sources/new/kandji")
def name_page(request: Request, principal: CurrentUser) -> Response:
    return render(request, "sources/name.html", {"section": "sources"})


@pages.get("/sources/new/kandji/connect")
def connect_page(request: Request, principal: CurrentUser, name: str = "") -> Response:
    problem = name_error(runtime_of(request).state, name)
    errors: FormErrors = {"name": problem} if problem else {}
    if errors:
        context = {"section": "sources", "values": {"name": name}, "errors": errors}
        return render(request, "sources/name.html", context, status_code=400)
    return _connect_form(request, {"name": name})


def _connect_form(
    request: Request,
    values: dict[str, str],
    *,
    errors: FormErrors | None = None,
    checks: list[CheckView] | None = None,
    check_errors: FormErrors | None = None,
    token_again: bool = False,
    status_code: int = 200,
) -> Response:
    values = {
        "poll_interval": str(sources.DEFAULT_POLL_INTERVAL),
        "retention_days": str(sources.DEFAULT_RETENTION_DAYS),
        **{key: value for key, value in values.items() if key != "token"},
    }
    context = {
        "section": "sources",
        "values": values,
        "errors": errors or {},
        "checks": checks,
        "check_errors": check_errors or {},
        "audit_failed": any(c.name == AUDIT and c.ok is False for c in checks or []),
        "token_again": token_again,
        "audit_explanation": AUDIT_EXPLANATION,
    }
    response = render(request, "sources/connect.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


FormText = Annotated[str, Form()]


@pages.post("/sources/verify")
def verify_page(
    request: Request,
    principal: CurrentUser,
    name: FormText = "",
    api_url: FormText = "",
    token: FormText = "",
    poll_interval: FormText = "",
    retention_days: FormText = "",
) -> Response:
    """Verify: the checklist alone for htmx (swapped in place), else the whole form with it."""
    runtime = runtime_of(request)
    errors: FormErrors = {}
    checks = None
    if not token.strip():
        errors["token"] = NO_TOKEN
    else:
        checks = check_views(verify_token(runtime.settings, api_url, token))
    audit_failed = any(c.name == AUDIT and c.ok is False for c in checks or [])
    context = {
        "checks": checks,
        "check_errors": errors,
        "audit_explanation": AUDIT_EXPLANATION,
        "audit_failed": audit_failed,
    }
    if "hx-request" in request.headers:
        response = render(request, "sources/_checklist.html", context)
        response.headers["Cache-Control"] = "no-store"
        return response
    values = {
        "name": name,
        "api_url": api_url,
        "poll_interval": poll_interval,
        "retention_days": retention_days,
    }
    return _connect_form(request, values, errors=errors, checks=checks, token_again=True)


@pages.post("/sources")
def save_page(
    request: Request,
    principal: CurrentUser,
    name: FormText = "",
    api_url: FormText = "",
    token: FormText = "",
    poll_interval: FormText = "",
    retention_days: FormText = "",
) -> Response:
    runtime = runtime_of(request)
    values = {
        "name": name,
        "api_url": api_url,
        "poll_interval": poll_interval,
        "retention_days": retention_days,
    }
    interval = _whole_number(poll_interval, sources.DEFAULT_POLL_INTERVAL)
    retention = _whole_number(retention_days, sources.DEFAULT_RETENTION_DAYS)
    new, errors = check_new_source(
        runtime.settings, runtime.state, name, api_url, token, interval or 0, retention or 0
    )
    if interval is None:
        errors["poll_interval"] = "The poll interval must be a whole number of seconds, like 60."
    if retention is None:
        errors["retention_days"] = "The retention must be a whole number of days, like 730."
    if errors or new is None:
        return _connect_form(request, values, errors=errors, token_again=True, status_code=400)
    report = verify_token(runtime.settings, new.api_url.base_url, new.token)
    failed = blocking_check(report)
    if failed is not None:
        # The failed check's own sentence on top; the checklist below explains a missing
        # List audit events, as RunReveal's Kandji source does.
        return _connect_form(
            request,
            values,
            errors={"": f"Source {new.name} was not saved: {failed.detail}"},
            checks=check_views(report),
            token_again=True,
            status_code=400,
        )
    info = add_source(runtime.state, new, runtime.jobs)
    return RedirectResponse(f"/sources?added={_quote(info.name)}", status_code=303)


@pages.get("/sources/{name}")
def source_page(request: Request, principal: CurrentUser, name: str, polled: str = "") -> Response:
    return _source_page(request, name, message=_poll_message(polled))


def _poll_message(polled: str) -> str:
    if polled == "queued":
        return "Poll queued: it starts within a few seconds."
    if polled == "done":
        return "Polled: the source's new audit events are stored."
    return ""


def _source_page(
    request: Request, name: str, *, message: str = "", error: str = "", status_code: int = 200
) -> Response:
    runtime = runtime_of(request)
    health = one_health(runtime, name)
    context = {
        "section": "sources",
        "h": health,
        "quarantined": runtime.store.quarantined(health.source.id, QUARANTINE_SHOWN),
        "message": message,
        "error": error,
        "scheduler_running": runtime.jobs.background,
    }
    return render(request, "sources/detail.html", context, status_code=status_code)


@pages.post("/sources/{name}/poll")
def poll_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    info = sources.get_source(runtime.state, name)
    outcome = poll_now(runtime, info)
    if outcome.error:
        message = f"The poll failed: {outcome.error}"
        return _source_page(request, name, error=message, status_code=400)
    polled = "queued" if outcome.queued else "done"
    return RedirectResponse(f"/sources/{_quote(info.name)}?polled={polled}", status_code=303)


@pages.get("/sources/{name}/remove")
def remove_confirm_page(request: Request, principal: CurrentUser, name: str) -> Response:
    info = sources.get_source(runtime_of(request).state, name)
    return render(request, "sources/remove.html", {"section": "sources", "source": info})


@pages.post("/sources/{name}/remove")
def remove_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    try:
        info = sources.remove_source(runtime.state, name)
    except NotFound:
        raise
    except BridgeError as exc:
        return _source_page(request, name, error=str(exc), status_code=400)
    return RedirectResponse(f"/sources?removed={_quote(info.name)}", status_code=303)


def _quote(name: str) -> str:
    return quote(name, safe="")


# -- REST API ---------------------------------------------------------------------------------


class SourceOut(BaseModel):
    """A source and how its polling goes. The token is never part of it."""

    id: str
    name: str
    api_url: str
    poll_interval: int = Field(description="Seconds between polls.")
    retention_days: int
    logs_enabled: bool = Field(description="False for a connection that only imports devices.")
    created_at: datetime
    status: str = Field(description="ok, failing, never polled, or not polled (logs disabled).")
    running: bool = Field(description="A poll is running now.")
    last_poll_at: datetime | None
    last_success_at: datetime | None
    lag_seconds: int | None = Field(description="How stale the source's logs may be.")
    lag_basis: str | None = Field(
        description="What lag_seconds counts from: 'last successful poll' or 'newest stored event'."
    )
    events_ingested: int
    quarantined_events: int
    last_error: str | None


def _out(health: SourceHealth) -> SourceOut:
    info = health.source
    return SourceOut(
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


class SourceCreate(BaseModel):
    name: str = Field(description="Letters, digits, spaces, dashes, underscores and dots.")
    api_url: str = Field(
        description="The Kandji API URL (https://SUBDOMAIN.api.kandji.io), or the web-app URL."
    )
    token: SecretStr = Field(description="The Kandji API token; stored encrypted, never returned.")
    poll_interval: int = Field(sources.DEFAULT_POLL_INTERVAL, description="Seconds between polls.")
    retention_days: int = sources.DEFAULT_RETENTION_DAYS
    verify: bool = Field(True, description="Check the URL, token and permissions before saving.")


class VerifyRequest(BaseModel):
    url: str = Field(description="The Kandji API URL, or the web-app URL.")
    token: SecretStr


class CheckOut(BaseModel):
    name: str = Field(description="URL, token, List audit events, Device list, Device details.")
    ok: bool | None = Field(description="None: not checked, an earlier check made it meaningless.")
    detail: str
    required: bool = Field(description="Needed to collect audit logs (else device import only).")


class VerifyOut(BaseModel):
    ok: bool = Field(description="Every check passed.")
    can_collect_logs: bool = Field(description="URL, token and List audit events passed.")
    api_url: str | None = Field(description="The API URL used.")
    api_url_note: str | None = Field(description="What was derived from the URL given.")
    problem: str | None = Field(description="Why a source would not be saved, when it would not.")
    checks: list[CheckOut]


class Created(BaseModel):
    source: SourceOut
    api_url_note: str | None
    verify: VerifyOut | None
    message: str


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


@api.get("/sources")
def api_list_sources(request: Request, principal: CurrentUser) -> list[SourceOut]:
    """Every source with its status, last poll, lag, events ingested and quarantined."""
    return [_out(health) for health in all_health(runtime_of(request))]


@api.get("/sources/{name}")
def api_get_source(request: Request, principal: CurrentUser, name: str) -> SourceOut:
    return _out(one_health(runtime_of(request), name))


@api.post("/sources/verify")
def api_verify(request: Request, principal: CurrentUser, body: VerifyRequest) -> VerifyOut:
    """Check a URL and token: the URL, the token, and each permission, without saving anything."""
    settings = runtime_of(request).settings
    return _verify_out(verify_token(settings, body.url, body.token.get_secret_value()))


@api.post(
    "/sources",
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
    if body.verify:
        report = verify_token(runtime.settings, new.api_url.base_url, new.token)
        checked = _verify_out(report)
        if checked.problem is not None:
            detail = f"Source {new.name} was not saved: {checked.problem}"
            content = {"detail": detail, "verify": checked.model_dump(mode="json")}
            return JSONResponse(content, status_code=400)
    info = add_source(runtime.state, new, runtime.jobs)
    first = FIRST_SYNC if runtime.jobs.background else NO_SCHEDULER
    return Created(
        source=_out(one_health(runtime, info.name)),
        api_url_note=new.api_url.note,
        verify=checked,
        message=f"Source {info.name} was added, reading {info.api_url}. {first}",
    )


@api.delete("/sources/{name}", status_code=204)
def api_remove_source(request: Request, principal: CurrentUser, name: str) -> Response:
    """Remove a source and its token; refused while a mapping uses it. Stored events stay."""
    sources.remove_source(runtime_of(request).state, name)
    return Response(status_code=204)


class PollOut(BaseModel):
    queued: bool = Field(description="True: the scheduler runs it; False: it ran in the request.")
    error: str | None


@api.post("/sources/{name}/poll")
def api_poll_source(request: Request, principal: CurrentUser, name: str) -> PollOut:
    """Poll now: queued on the scheduler, or run in the request when background jobs are off."""
    runtime = runtime_of(request)
    outcome = poll_now(runtime, sources.get_source(runtime.state, name))
    return PollOut(queued=outcome.queued, error=outcome.error)
