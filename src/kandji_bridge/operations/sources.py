"""Source operations: check a new source, verify a URL and token or a saved source, add one,
and how each source's polling goes.

`source add` (the CLI) and the Sources form and REST API share them: the same field errors
before anything reaches Kandji (`check_new_source`), the same verify, and the same rule that a
source whose URL, token or "List audit events" permission fails is never saved
(`blocking_check`). The registry itself (what is stored) is `source_registry.py`.
"""

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kandji_bridge import redact, source_registry
from kandji_bridge.config import Settings
from kandji_bridge.db.models import utcnow
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound, web_message
from kandji_bridge.jobs import status as jobs
from kandji_bridge.jobs.runner import JobRunner
from kandji_bridge.kandji.errors import InvalidURLError
from kandji_bridge.kandji.permissions import AUDIT_EVENTS, OPTIONAL
from kandji_bridge.kandji.urls import ApiUrl, normalize_api_url
from kandji_bridge.logs.collector import CLOCK_SKEW
from kandji_bridge.logs.store import LogStore
from kandji_bridge.operations.connection import lost_sentence, lost_uses, uses_of
from kandji_bridge.operations.verify import TOKEN, URL, Check, VerifyReport, verify

# The checks a logs source cannot do without; the device permissions only serve device import.
REQUIRED_CHECKS = (URL, TOKEN, AUDIT_EVENTS.label)
NO_TOKEN = "No API token was given; paste the token made in Kandji Settings → Access."  # noqa: S105
RANGES = {
    "poll_interval": ("The poll interval", source_registry.POLL_INTERVAL_RANGE, "seconds"),
    "retention_days": ("The retention", source_registry.RETENTION_DAYS_RANGE, "days"),
}

# Form field -> the sentence to show next to it.
FieldErrors = dict[str, str]


@dataclass(frozen=True)
class NewSource:
    """A source that passed `check_new_source`, ready to verify and add."""

    name: str
    api_url: ApiUrl
    token: str = field(repr=False)
    poll_interval: int
    retention_days: int


def name_error(state: StateDB, name: str, for_web: bool = True) -> str | None:
    """Why `name` cannot name a new source (unusable, or taken), or None; worded for the web UI
    unless `for_web` is False (the CLI's sentence names its command)."""
    try:
        name = source_registry.validate_name(name)
        source_registry.get_source(state, name)
    except NotFound:
        return None
    except BridgeError as exc:
        return web_message(exc) if for_web else str(exc)
    taken = source_registry.already_exists(name)
    return web_message(taken) if for_web else str(taken)


def check_new_source(
    settings: Settings,
    state: StateDB,
    name: str,
    url: str,
    token: str,
    poll_interval: int,
    retention_days: int,
    for_web: bool = True,
) -> tuple[NewSource | None, FieldErrors]:
    """The new source, or the errors by field (name, api_url, token, poll_interval,
    retention_days), found before anything reaches Kandji."""
    errors: FieldErrors = {}
    problem = name_error(state, name, for_web)
    if problem is not None:
        errors["name"] = problem
    api_url = None
    try:
        api_url = normalize_api_url(url, settings.allowed_hosts)
    except InvalidURLError as exc:
        errors["api_url"] = str(exc)
    if not token.strip():
        errors["token"] = NO_TOKEN
    for key, value in (("poll_interval", poll_interval), ("retention_days", retention_days)):
        what, (low, high), unit = RANGES[key]
        if not low <= value <= high:
            errors[key] = (
                f"{what} must be a whole number of {unit} from {low} to {high}, not {value}."
            )
    if errors or api_url is None:
        return None, errors
    new = NewSource(name.strip(), api_url, token.strip(), poll_interval, retention_days)
    return new, errors


def verify_token(settings: Settings, url: str, token: str) -> VerifyReport:
    """Verify a URL and a token not saved yet (the token is kept out of every output)."""
    token = token.strip()
    redact.remember(token)
    return asyncio.run(
        verify(url, token, settings.allowed_hosts, settings.kandji_limits, optional=OPTIONAL)
    )


def verify_source(settings: Settings, state: StateDB, name: str) -> VerifyReport:
    """Verify a saved source with its stored token (`verify NAME`); what the token may do is
    stored with the source when Kandji accepted it."""
    info = source_registry.get_source(state, name)
    token = source_registry.get_source_token(state, info.name)
    report = asyncio.run(
        verify(
            info.api_url, token, settings.allowed_hosts, settings.kandji_limits, optional=OPTIONAL
        )
    )
    if report.check(TOKEN).ok:
        source_registry.record_permissions(state, info.name, report.granted())
    return report


def blocking_check(report: VerifyReport) -> Check | None:
    """The check that keeps a logs source from being saved (URL, token, List audit events), or
    None when it may be saved."""
    failed = [c for c in report.checks if c.name in REQUIRED_CHECKS and c.ok is not True]
    return next((c for c in failed if c.ok is False), failed[0] if failed else None)


def add_source(
    state: StateDB,
    new: NewSource,
    runner: JobRunner | None = None,
    report: VerifyReport | None = None,
) -> source_registry.SourceInfo:
    """Store the source, with what `report` (its verify) found the token allows; with a runner
    that runs in the background, its first poll (the backfill) starts at once."""
    info = source_registry.add_source(
        state,
        name=new.name,
        api_url=new.api_url.base_url,
        token=new.token,
        poll_interval=new.poll_interval,
        retention_days=new.retention_days,
        permissions=report.granted() if report is not None else None,
    )
    if runner is not None and runner.background:
        runner.trigger(jobs.source_job(info.id))
    return info


@dataclass(frozen=True)
class SourceUpdate:
    """What `update_source` changed; `report` is the new token's check, when one was given."""

    source: source_registry.SourceInfo
    report: VerifyReport | None
    changed: list[str]


def update_source(
    settings: Settings,
    state: StateDB,
    store: LogStore | None,
    name: str,
    *,
    token: str | None = None,
    poll_interval: int | None = None,
    retention_days: int | None = None,
    display_name: str | None = None,
) -> SourceUpdate:
    """Change a source's token, poll interval, retention or display name, all or nothing. A new
    token is verified first and refused (nothing changes) when Kandji refuses it or when it
    lacks a permission one of the source's pipelines uses; the old token stays until then. The
    checkpoint and stored events are untouched: they belong to the source, not its token. A new
    retention applies to the events already stored too (`store`: None when another process owns
    it; the rows then keep their retention until the owner applies it)."""
    info = source_registry.get_source(state, name)
    for key, value in (("poll_interval", poll_interval), ("retention_days", retention_days)):
        if value is not None:
            what, (low, high), unit = RANGES[key]
            if isinstance(value, bool) or not low <= value <= high:
                raise BridgeError(
                    f"{what} must be a whole number of {unit} from {low} to {high}, not {value}."
                )
    report = None
    granted = None
    if token is not None:
        token = token.strip()
        if not token:
            raise BridgeError(NO_TOKEN)
        redact.remember(token)
        report = asyncio.run(
            verify(
                info.api_url,
                token,
                settings.allowed_hosts,
                settings.kandji_limits,
                optional=OPTIONAL,
            )
        )
        refused = next(
            (c for c in report.checks if c.name in (URL, TOKEN) and c.ok is not True), None
        )
        if refused is not None:
            raise BridgeError(
                f"The new token was not saved and source {info.name} keeps its token: "
                f"{refused.detail}"
            )
        lost = lost_uses(uses_of(state, info.name), report)
        if lost:
            raise BridgeError(lost_sentence(info, lost))
        granted = report.granted()
    updated = source_registry.update_source(
        state,
        info.name,
        token=token,
        permissions=granted,
        poll_interval=poll_interval,
        retention_days=retention_days,
        display_name=display_name,
    )
    if retention_days is not None and store is not None:
        store.set_retention(info.id, retention_days)
    changed = [
        what
        for what, given in (
            ("token", token),
            ("poll interval", poll_interval),
            ("retention", retention_days),
            ("display name", display_name),
        )
        if given is not None
    ]
    return SourceUpdate(updated, report, changed)


@dataclass(frozen=True)
class SourceHealth:
    """A source with how its polling goes, for the list, its page and the API."""

    source: source_registry.SourceInfo
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
    store: LogStore, info: source_registry.SourceInfo, status: jobs.JobStatusInfo | None
) -> SourceHealth:
    """How `info` is doing, from its job status (any process's) and the log store."""
    now = utcnow()
    events = store.count(info.id)
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
        checkpoint = store.latest_checkpoint(info.id, not_after=now + CLOCK_SKEW)
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
        quarantined_events=store.quarantine_count(info.id),
        last_error=status.last_error if status else None,
    )


def _seconds(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds()))


def all_health(state: StateDB, store: LogStore) -> list[SourceHealth]:
    """Every source with how its polling goes."""
    statuses = jobs.job_statuses(state)
    return [
        source_health(store, info, statuses.get(jobs.source_job(info.id)))
        for info in source_registry.list_sources(state)
    ]


def one_health(state: StateDB, store: LogStore, name: str) -> SourceHealth:
    """Source `name` with how its polling goes (NotFound if there is none)."""
    info = source_registry.get_source(state, name)
    return source_health(store, info, jobs.job_status(state, jobs.source_job(info.id)))


@dataclass(frozen=True)
class RemovedSource:
    source: source_registry.SourceInfo
    events_deleted: int | None  # None: its stored events were kept


def remove_source(
    state: StateDB, name: str, *, delete_events_from: LogStore | None = None
) -> RemovedSource:
    """Remove a source and its token (refused while a mapping uses it); with
    `delete_events_from`, its stored events and quarantine entries are deleted from that store
    too. The source goes first, so no new pass starts for it while its events are deleted."""
    info = source_registry.remove_source(state, name)
    if delete_events_from is None:
        return RemovedSource(info, None)
    return RemovedSource(info, delete_events_from.delete_source_events(info.id))
