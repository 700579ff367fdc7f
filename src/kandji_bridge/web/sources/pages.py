"""Sources: connect a Kandji tenant as RunReveal's flow does, watch each source's health.

The flow is Sources → Add Source → the Kandji tile → a name → Connect Source → API URL and token →
Verify (the per-permission checklist, swapped in place by htmx, or a page of its own without
JavaScript) → Save. Save verifies again on the server: a source whose URL, token or "List audit
events" permission fails is never saved. The token is write-only: it is read from the form, sent
to Kandji and encrypted into the state DB, and never rendered, returned or logged.

The REST API under /api/sources does the same for scripts.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from kandji_bridge import source_registry as sources
from kandji_bridge.errors import BridgeError, NotFound, web_message
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import describe_damage
from kandji_bridge.operations.connection import source_uses, uses_of
from kandji_bridge.operations.polling import sync_source
from kandji_bridge.operations.sources import (
    NO_TOKEN,
    add_source,
    all_health,
    blocking_check,
    check_new_source,
    name_error,
    one_health,
    remove_source,
    update_source,
    verify_source,
    verify_token,
)
from kandji_bridge.operations.verify import TOKEN, URL
from kandji_bridge.web.auth import CurrentUser, runtime_of
from kandji_bridge.web.sources.schemas import (
    AUDIT,
    AUDIT_EXPLANATION,
    FIRST_SYNC,
    KANDJI_DESCRIPTION,
    CheckView,
    check_views,
)
from kandji_bridge.web.templating import FormErrors, render

pages = APIRouter(include_in_schema=False)

QUARANTINE_SHOWN = 20


def _whole_number(text: str, default: int) -> int | None:
    text = text.strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        return None


# -- Pages ------------------------------------------------------------------------------------


@pages.get("/sources")
def list_page(
    request: Request,
    principal: CurrentUser,
    added: str = "",
    removed: str = "",
    deleted: int | None = None,
) -> Response:
    runtime = runtime_of(request)
    health = all_health(runtime.state, runtime.store)
    message = ""
    if added:
        found = next((h.source for h in health if h.source.name == added), None)
        if found is not None:
            # Without a scheduler the page's own banner says how to poll.
            first = f" {FIRST_SYNC}" if runtime.jobs.background else ""
            message = f"Source {found.name} was added, reading {found.api_url}.{first}"
    elif removed and all(h.source.name != removed for h in health):
        message = f"Source {removed} was removed; its stored events stay in the log store."
        if deleted is not None:
            message = f"Source {removed} was removed, and its {deleted:,} stored events deleted."
    context = {
        "section": "sources",
        "sources": health,
        "uses": {uses.source.id: uses for uses in source_uses(runtime.state)},
        "message": message,
        "scheduler_running": runtime.jobs.background,
        "store_notice": describe_damage(runtime.store.damaged_parts(), in_web=True),
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
    info = add_source(runtime.state, new, runtime.jobs, report)
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
    health = one_health(runtime.state, runtime.store, name)
    context = {
        "section": "sources",
        "h": health,
        "uses": uses_of(runtime.state, health.source.name),
        "quarantined": runtime.store.quarantined(health.source.id, QUARANTINE_SHOWN),
        "message": message,
        "error": error,
        "scheduler_running": runtime.jobs.background,
    }
    return render(request, "sources/detail.html", context, status_code=status_code)


@pages.get("/sources/{name}/edit")
def edit_page(request: Request, principal: CurrentUser, name: str) -> Response:
    info = sources.get_source(runtime_of(request).state, name)
    values = {
        "display_name": info.display_name or "",
        "poll_interval": str(info.poll_interval_seconds),
        "retention_days": str(info.retention_days),
    }
    return _edit_form(request, info, values)


@pages.post("/sources/{name}/edit")
def edit_save_page(
    request: Request,
    principal: CurrentUser,
    name: str,
    display_name: FormText = "",
    token: FormText = "",
    poll_interval: FormText = "",
    retention_days: FormText = "",
) -> Response:
    """Save the edit: a pasted token is verified first; nothing changes unless all of it can."""
    runtime = runtime_of(request)
    info = sources.get_source(runtime.state, name)
    values = {
        "display_name": display_name,
        "poll_interval": poll_interval,
        "retention_days": retention_days,
    }
    interval = _whole_number(poll_interval, info.poll_interval_seconds)
    retention = _whole_number(retention_days, info.retention_days)
    shown = info.display_name or ""
    errors: FormErrors = {}
    if interval is None:
        errors["poll_interval"] = "The poll interval must be a whole number of seconds, like 60."
    if retention is None:
        errors["retention_days"] = "The retention must be a whole number of days, like 730."
    if errors:
        return _edit_form(request, info, values, errors=errors, status_code=400)
    try:
        result = update_source(
            runtime.settings,
            runtime.state,
            runtime.store,
            info.name,
            token=token if token.strip() else None,
            poll_interval=interval if interval != info.poll_interval_seconds else None,
            retention_days=retention if retention != info.retention_days else None,
            display_name=None if display_name.strip() == shown else display_name,
        )
    except NotFound:
        raise
    except BridgeError as exc:
        where = "token" if token.strip() else ""
        errors = {where: f"Nothing was changed: {web_message(exc)}"}
        return _edit_form(request, info, values, errors=errors, status_code=400)
    changed = ", ".join(result.changed) or "nothing"
    return _source_page(request, info.name, message=f"Saved ({changed}).")


def _edit_form(
    request: Request,
    info: sources.SourceInfo,
    values: dict[str, str],
    *,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    context = {"section": "sources", "source": info, "values": values, "errors": errors or {}}
    response = render(request, "sources/edit.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.post("/sources/{name}/poll")
def poll_page(request: Request, principal: CurrentUser, name: str) -> Response:
    runtime = runtime_of(request)
    info = sources.get_source(runtime.state, name)
    outcome = runtime.jobs.trigger(jobs.source_job(info.id))
    if outcome.error:
        message = f"The poll failed: {outcome.error}"
        return _source_page(request, name, error=message, status_code=400)
    polled = "queued" if outcome.queued else "done"
    return RedirectResponse(f"/sources/{_quote(info.name)}?polled={polled}", status_code=303)


@pages.post("/sources/{name}/resync")
def resync_page(
    request: Request, principal: CurrentUser, name: str, start: FormText = "", end: FormText = ""
) -> Response:
    """Collect a period again (after damage, or to check nothing is missing): the pass runs in
    the request, and events already stored are skipped."""
    runtime = runtime_of(request)
    try:
        first = date.fromisoformat(start.strip())
        last = date.fromisoformat(end.strip()) if end.strip() else datetime.now(UTC).date()
    except ValueError:
        return _source_page(
            request, name, error="Give the period's first and last day as dates.", status_code=400
        )
    if first > last:
        error = "The period's first day is after its last; give a first day that comes first."
        return _source_page(request, name, error=error, status_code=400)
    window = (
        datetime.combine(first, time(), UTC),
        min(datetime.combine(last + timedelta(days=1), time(), UTC), datetime.now(UTC)),
    )
    try:
        result = sync_source(
            runtime.settings, runtime.state, runtime.store, runtime.enricher, name, window=window
        )
    except BridgeError as exc:
        return _source_page(request, name, error=web_message(exc), status_code=400)
    message = (
        f"Collected {first:%Y-%m-%d} to {last:%Y-%m-%d} again: {result.fetched:,} events read, "
        f"{result.stored:,} new stored, {result.duplicates:,} already stored."
    )
    return _source_page(request, name, message=message)


@pages.post("/sources/{name}/check")
def check_token_page(request: Request, principal: CurrentUser, name: str) -> Response:
    """Ask Kandji now what the source's stored token allows, and keep the answer."""
    runtime = runtime_of(request)
    report = verify_source(runtime.settings, runtime.state, name)
    failed = next((c for c in report.checks if c.ok is False and not c.optional), None)
    if failed is not None and failed.name in (URL, TOKEN):
        return _source_page(request, name, error=failed.detail, status_code=400)
    return _source_page(request, name, message="Checked the token with Kandji just now.")


@pages.get("/sources/{name}/remove")
def remove_confirm_page(request: Request, principal: CurrentUser, name: str) -> Response:
    info = sources.get_source(runtime_of(request).state, name)
    return render(request, "sources/remove.html", {"section": "sources", "source": info})


@pages.post("/sources/{name}/remove")
def remove_page(
    request: Request, principal: CurrentUser, name: str, delete_events: FormText = ""
) -> Response:
    runtime = runtime_of(request)
    store = runtime.store if delete_events else None
    try:
        removed = remove_source(runtime.state, name, delete_events_from=store)
    except NotFound:
        raise
    except BridgeError as exc:
        return _source_page(request, name, error=web_message(exc), status_code=400)
    deleted = "" if removed.events_deleted is None else f"&deleted={removed.events_deleted}"
    url = f"/sources?removed={_quote(removed.source.name)}{deleted}"
    return RedirectResponse(url, status_code=303)


def _quote(name: str) -> str:
    return quote(name, safe="")
