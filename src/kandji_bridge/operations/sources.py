"""Source operations: check a new source, verify a URL and token or a saved source, add one.

`source add` (the CLI) and the Sources form and REST API share them: the same field errors
before anything reaches Kandji (`check_new_source`), the same verify, and the same rule that a
source whose URL, token or "List audit events" permission fails is never saved
(`blocking_check`). The registry itself (what is stored) is `source_registry.py`.
"""

import asyncio
from dataclasses import dataclass, field

from kandji_bridge import redact, source_registry
from kandji_bridge.config import Settings
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.jobs import status as jobs
from kandji_bridge.jobs.runner import JobRunner
from kandji_bridge.kandji.errors import InvalidURLError
from kandji_bridge.kandji.permissions import AUDIT_EVENTS
from kandji_bridge.kandji.urls import ApiUrl, normalize_api_url
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


def name_error(state: StateDB, name: str) -> str | None:
    """Why `name` cannot name a new source (unusable, or taken), or None."""
    try:
        name = source_registry.validate_name(name)
        source_registry.get_source(state, name)
    except NotFound:
        return None
    except BridgeError as exc:
        return str(exc)
    return str(source_registry.already_exists(name))


def check_new_source(
    settings: Settings,
    state: StateDB,
    name: str,
    url: str,
    token: str,
    poll_interval: int,
    retention_days: int,
) -> tuple[NewSource | None, FieldErrors]:
    """The new source, or the errors by field (name, api_url, token, poll_interval,
    retention_days), found before anything reaches Kandji."""
    errors: FieldErrors = {}
    problem = name_error(state, name)
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
    return asyncio.run(verify(url, token, settings.allowed_hosts, settings.kandji_limits))


def verify_source(settings: Settings, state: StateDB, name: str) -> VerifyReport:
    """Verify a saved source with its stored token (`verify NAME`)."""
    info = source_registry.get_source(state, name)
    token = source_registry.get_source_token(state, info.name)
    return asyncio.run(verify(info.api_url, token, settings.allowed_hosts, settings.kandji_limits))


def blocking_check(report: VerifyReport) -> Check | None:
    """The check that keeps a logs source from being saved (URL, token, List audit events), or
    None when it may be saved."""
    failed = [c for c in report.checks if c.name in REQUIRED_CHECKS and c.ok is not True]
    return next((c for c in failed if c.ok is False), failed[0] if failed else None)


def add_source(
    state: StateDB, new: NewSource, runner: JobRunner | None = None
) -> source_registry.SourceInfo:
    """Store the source; with a runner that runs in the background, its first poll (the
    backfill) starts at once."""
    info = source_registry.add_source(
        state,
        name=new.name,
        api_url=new.api_url.base_url,
        token=new.token,
        poll_interval=new.poll_interval,
        retention_days=new.retention_days,
    )
    if runner is not None and runner.background:
        runner.trigger(jobs.source_job(info.id))
    return info
