"""The device import's Kandji connection, as Asset Panda's Integrations flow makes it, and what
each source's token must keep allowing.

"Test and save connection" checks the Base URL, the API Key and both device permissions (through
the one permission check, `operations/verify.py`) and saves only if all pass. The connection is a
source (table `sources`) with `logs_enabled=False`: it only imports devices. A source that already
reads the same API URL gets the new key only if the key allows everything that source's pipelines
use (its audit log collection, its mappings); otherwise saving is refused, naming what would stop
working, unless the user asks to keep the key as a separate device-import connection. The
integration's connection is the one new mappings get: the newest source whose token was found
to allow the device import.
"""

import asyncio
import re
from dataclasses import dataclass, field

from sqlalchemy import select

from kandji_bridge import source_registry
from kandji_bridge.config import Settings
from kandji_bridge.db.models import Source
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import AlreadyExists, BridgeError
from kandji_bridge.inventory.mappings import list_mappings
from kandji_bridge.kandji import permissions
from kandji_bridge.kandji.errors import InvalidTokenError, InvalidURLError, PermissionDeniedError
from kandji_bridge.kandji.permissions import AUDIT_EVENTS, DEVICE_DETAILS, DEVICE_LIST, Permission
from kandji_bridge.kandji.urls import ApiUrl, normalize_api_url
from kandji_bridge.operations.verify import TOKEN, URL, Check, VerifyReport, verify

# The two permissions as Asset Panda's Kandji guide names them on Kandji's token page.
GUIDE_PERMISSION = {DEVICE_LIST.key: "GET /devices", DEVICE_DETAILS.key: "GET /device-details"}
# The checks as the Integrations page names them.
BASE_URL = "Base URL"
API_KEY = "API Key"


@dataclass(frozen=True)
class Use:
    """One permission a pipeline of a source relies on."""

    permission: Permission
    pipeline: str  # "the audit log collection of source acme", "mapping Laptops"


@dataclass(frozen=True)
class SourceUses:
    """A source with what uses it: its log collection and the mappings that import through it."""

    source: source_registry.SourceInfo
    mappings: list[str]
    uses: list[Use]

    @property
    def permission_labels(self) -> list[str]:
        """What the token was found to allow at its last check, by Kandji's names."""
        granted = self.source.permissions or ()
        return [p.label for p in permissions.ALL + permissions.OPTIONAL if p.key in granted]


@dataclass(frozen=True)
class ConnectionTest:
    """What "Test and save connection" found; `source` is set only when it saved."""

    checks: list[Check]
    api_url: ApiUrl | None = None
    source: source_registry.SourceInfo | None = None
    errors: dict[str, str] = field(default_factory=dict)  # form field -> sentence
    # The source whose token the key would have replaced, when the key lacks what it uses.
    conflict: source_registry.SourceInfo | None = None
    replaced: source_registry.SourceInfo | None = None  # the source whose key was rotated

    @property
    def ok(self) -> bool:
        return self.source is not None


def source_uses(state: StateDB) -> list[SourceUses]:
    """Every source with its pipelines and the permissions each relies on."""
    by_source: dict[str, list[tuple[str, bool]]] = {}
    for summary in list_mappings(state):
        mapping = summary.mapping
        by_source.setdefault(mapping.source.id, []).append((mapping.name, mapping.needs_details))
    result = []
    for info in source_registry.list_sources(state):
        uses = []
        if info.logs_enabled:
            logs = f"the audit log collection of source {info.name}"
            uses.append(Use(AUDIT_EVENTS, logs))
        for name, details in by_source.get(info.id, []):
            uses.append(Use(DEVICE_LIST, f"mapping {name}"))
            if details:
                uses.append(Use(DEVICE_DETAILS, f"mapping {name}"))
        mappings = [name for name, _ in by_source.get(info.id, [])]
        result.append(SourceUses(info, mappings, uses))
    return result


def uses_of(state: StateDB, name: str) -> SourceUses:
    info = source_registry.get_source(state, name)
    return next(uses for uses in source_uses(state) if uses.source.id == info.id)


def lost_uses(uses: SourceUses, report: VerifyReport) -> list[Use]:
    """What would stop working if the token checked in `report` replaced the source's token."""
    granted = report.granted()
    return [use for use in uses.uses if use.permission.key not in granted]


def lost_sentence(source: source_registry.SourceInfo, lost: list[Use]) -> str:
    """One sentence naming each permission the new token lacks and what relies on it."""
    parts = []
    for permission in dict.fromkeys(use.permission for use in lost):
        pipelines = ", ".join(use.pipeline for use in lost if use.permission == permission)
        parts.append(f'"{permission.label}" ({permission.endpoint}), which {pipelines} uses')
    return (
        f"This token lacks {'; and '.join(parts)}; replacing the token of source {source.name} "
        "with it would stop that, so nothing was saved."
    )


def current_connection(state: StateDB) -> source_registry.SourceInfo | None:
    """The Kandji connection new mappings use: the newest source whose token was found to allow
    the device list; else the source the most mappings use; else the newest source."""
    everything = source_uses(state)
    newest_first = sorted(
        everything, key=lambda uses: (uses.source.updated_at, uses.source.created_at), reverse=True
    )
    for uses in newest_first:
        if DEVICE_LIST.key in (uses.source.permissions or ()):
            return uses.source
    used = max(everything, key=lambda uses: len(uses.mappings), default=None)
    if used is not None and used.mappings:
        return used.source
    return newest_first[0].source if newest_first else None


def mapping_connections(state: StateDB) -> list[SourceUses]:
    """The sources mappings import through, or could: used by a mapping, or allowed devices."""
    return [
        uses
        for uses in source_uses(state)
        if uses.mappings or DEVICE_LIST.key in (uses.source.permissions or ())
    ]


def test_and_save_connection(
    settings: Settings, state: StateDB, base_url: str, api_key: str, separate: bool = False
) -> ConnectionTest:
    """Check the URL, the key and both device permissions; save only if all of them pass, and
    never in place of a token that allows what the new key does not (`separate`: keep that
    token and save the key as a connection of its own)."""
    errors: dict[str, str] = {}
    api_url: ApiUrl | None = None
    if not base_url.strip():
        errors["base_url"] = (
            "Enter the Base URL: your Kandji web address, like https://yourcompany.kandji.io."
        )
    else:
        try:
            api_url = normalize_api_url(base_url, settings.allowed_hosts)
        except InvalidURLError as exc:
            errors["base_url"] = str(exc)
    if not api_key.strip():
        errors["api_key"] = (
            "Paste the API key made in Kandji Settings > Access > API Token Management."
        )
    if errors or api_url is None:
        return ConnectionTest([], api_url, errors=errors)
    try:
        report = asyncio.run(
            verify(
                api_url.base_url,
                api_key.strip(),
                settings.allowed_hosts,
                settings.kandji_limits,
                wanted=(DEVICE_LIST, DEVICE_DETAILS, AUDIT_EVENTS),
            )
        )
    except InvalidTokenError as exc:  # not something a Kandji token can be
        return ConnectionTest([], api_url, errors={"api_key": str(exc)})
    # "List audit events" is probed only to know what the key could replace: not shown here.
    checks = [
        _as_integration(check, api_url)
        for check in report.checks
        if check.ok is not None and check.name != AUDIT_EVENTS.label
    ]
    failed = next((check for check in checks if check.ok is False), None)
    if failed is not None:
        where = "base_url" if failed.name == BASE_URL else "api_key"
        return ConnectionTest(checks, api_url, errors={where: failed.detail})
    granted = report.granted()
    existing = _connection_for(state, api_url)
    if existing is not None and not separate:
        lost = lost_uses(uses_of(state, existing.name), report)
        if lost:
            sentence = lost_sentence(existing, lost)
            return ConnectionTest(checks, api_url, errors={"api_key": sentence}, conflict=existing)
        saved = source_registry.set_source_token(state, existing.name, api_key, granted)
        return ConnectionTest(checks, api_url, saved, replaced=existing)
    return ConnectionTest(checks, api_url, _add_connection(state, api_url, api_key, granted))


def _connection_for(state: StateDB, api_url: ApiUrl) -> source_registry.SourceInfo | None:
    """The source a key for this URL replaces: a device-import connection if there is one (the
    newest), else the source that reads the URL."""
    with state.session() as session:
        device_only = session.scalar(
            select(Source)
            .where(Source.api_url == api_url.base_url, Source.logs_enabled.is_(False))
            .order_by(Source.created_at.desc())
            .limit(1)
        )
        if device_only is not None:
            return source_registry.source_info(device_only)
    return source_registry.find_source_by_url(state, api_url.base_url)


def _as_integration(check: Check, api_url: ApiUrl) -> Check:
    """A check as the Integrations page words it (Asset Panda's names for the URL and key)."""
    if check.name == URL:
        detail = api_url.base_url if check.ok else check.detail
        return Check(BASE_URL, check.ok, detail, check.error)
    if check.name == TOKEN:
        detail = "Kandji accepted the key" if check.ok else check.detail
        return Check(API_KEY, check.ok, detail, check.error)
    if isinstance(check.error, PermissionDeniedError):
        return Check(check.name, False, missing_permission(check.error.permission), check.error)
    return check


def missing_permission(permission: Permission) -> str:
    named = GUIDE_PERMISSION[permission.key]
    return (
        f'The API key lacks the "{permission.label}" permission ({named}); in Kandji open '
        f"Settings > Access > API Token Management, edit the token, select {named}, save it, "
        "and test again."
    )


def _add_connection(
    state: StateDB, api_url: ApiUrl, token: str, granted: tuple[str, ...]
) -> source_registry.SourceInfo:
    base = connection_name(api_url)
    for attempt in range(1, 100):
        name = base if attempt == 1 else f"{base}-{attempt}"
        try:
            return source_registry.add_source(
                state, name, api_url.base_url, token, logs_enabled=False, permissions=granted
            )
        except AlreadyExists:
            continue
    raise BridgeError(f"Sources {base} to {base}-99 all exist; remove one and test again.")


def connection_name(api_url: ApiUrl) -> str:
    """'https://yourcompany.api.kandji.io' -> 'yourcompany'; a host:port -> 'host-port'."""
    host = api_url.host
    if host.endswith("kandji.io"):
        name = host.split(".", 1)[0]
    else:
        name = re.sub(r"[^\w.-]+", "-", host).strip("-")
    return source_registry.validate_name(name[: source_registry.NAME_MAX_LENGTH] or "kandji")
