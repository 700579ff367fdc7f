"""What the Sources pages and the REST API show: the models of /api/sources and the verify
checklist's rows. The token is never part of any of them."""

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field, SecretStr

from kandji_bridge import source_registry
from kandji_bridge.kandji import permissions
from kandji_bridge.operations.sources import REQUIRED_CHECKS, blocking_check
from kandji_bridge.operations.verify import VerifyReport

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
    "open a source and use Poll now to poll it."
)


@dataclass(frozen=True)
class CheckView:
    name: str
    ok: bool | None
    detail: str
    required: bool

    optional: bool = False

    @property
    def role(self) -> str:
        if self.optional:
            return "optional: adds admins' names to the audit logs"
        if self.name == AUDIT:
            return "required to collect audit logs"
        return "required" if self.required else "optional: needed only for device import"


def check_views(report: VerifyReport) -> list[CheckView]:
    return [
        CheckView(check.name, check.ok, check.detail, check.name in REQUIRED_CHECKS, check.optional)
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
    display_name: str | None = None
    permissions: list[str] | None = Field(
        None,
        description="What Kandji allowed the token when it was last saved or verified, by "
        "Kandji's names; null: never checked.",
    )
    used_by: list[str] = Field(
        default_factory=list,
        description="What relies on the token: its audit log collection, the mappings using it.",
    )


class SourceUpdate(BaseModel):
    """Only the fields given change; a new token is verified first and nothing changes if it
    fails or lacks a permission something using the source needs."""

    token: SecretStr | None = Field(None, description="A new Kandji API token (rotation).")
    poll_interval: int | None = Field(None, description="Seconds between polls.")
    retention_days: int | None = Field(None, description="Days the log store keeps the events.")
    display_name: str | None = Field(None, description='A name to show; "" clears it.')


class SourceCreate(BaseModel):
    name: str = Field(description="Letters, digits, spaces, dashes, underscores and dots.")
    api_url: str = Field(
        description="The Kandji API URL (https://SUBDOMAIN.api.kandji.io), or the web-app URL."
    )
    token: SecretStr = Field(description="The Kandji API token; stored encrypted, never returned.")
    poll_interval: int = Field(
        source_registry.DEFAULT_POLL_INTERVAL, description="Seconds between polls."
    )
    retention_days: int = source_registry.DEFAULT_RETENTION_DAYS
    verify: bool = Field(True, description="Check the URL, token and permissions before saving.")


class VerifyRequest(BaseModel):
    url: str = Field(description="The Kandji API URL, or the web-app URL.")
    token: SecretStr


class CheckOut(BaseModel):
    name: str = Field(description="URL, token, List audit events, Device list, Device details.")
    ok: bool | None = Field(description="None: not checked, an earlier check made it meaningless.")
    detail: str
    required: bool = Field(description="Needed to collect audit logs (else device import only).")
    optional: bool = Field(
        False, description="Needed by nothing (List admins: actor names); never fails verify."
    )


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


class PollRequest(BaseModel):
    """A pass asked for a period (a resync) or a first sync's backfill: it runs in the request,
    as `logs resync` and `logs sync --backfill-days` run it, and answers with what it did."""

    start: datetime | None = Field(
        None, description="Collect again from this moment (UTC if no zone): a resync."
    )
    end: datetime | None = Field(None, description="The resync's last moment; default: now.")
    backfill_days: int | None = Field(
        None, ge=1, le=366, description="On a first sync, backfill only this many days."
    )


class PassOut(BaseModel):
    """What a pass run in the request did."""

    backfill: bool
    pages: int
    fetched: int
    stored: int = Field(description="New events stored.")
    duplicates: int = Field(description="Events already stored, skipped.")
    quarantined: int
    seconds: float
    covered_until: datetime | None = Field(description="The newest event seen.")


class PollOut(BaseModel):
    queued: bool = Field(description="True: the scheduler runs it; False: it ran in the request.")
    error: str | None
    result: PassOut | None = Field(
        None, description="What the pass did, for a resync or a backfill (they run in the request)."
    )


class Updated(BaseModel):
    source: SourceOut
    changed: list[str] = Field(description="What changed: token, poll interval, retention...")
    verify: VerifyOut | None = Field(description="The new token's checks, when one was given.")
    message: str
