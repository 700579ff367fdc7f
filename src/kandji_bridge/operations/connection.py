"""The device import's Kandji connection, as Asset Panda's Integrations flow makes it.

"Test and save connection" checks the Base URL, the API Key and both device permissions (through
the one permission check, `operations/verify.py`) and saves only if all pass. The connection is a
source (table `sources`) with `logs_enabled=False`: it only imports devices. A source that already
reads the same API URL is reused (its token replaced after a successful test). The integration's
connection is the source saved most recently.
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
from kandji_bridge.kandji.errors import InvalidTokenError, InvalidURLError, PermissionDeniedError
from kandji_bridge.kandji.permissions import DEVICE_DETAILS, DEVICE_LIST, Permission
from kandji_bridge.kandji.urls import ApiUrl, normalize_api_url
from kandji_bridge.operations.verify import TOKEN, URL, Check, verify

# The two permissions as Asset Panda's Kandji guide names them on Kandji's token page.
GUIDE_PERMISSION = {DEVICE_LIST.key: "GET /devices", DEVICE_DETAILS.key: "GET /device-details"}
# The checks as the Integrations page names them.
BASE_URL = "Base URL"
API_KEY = "API Key"


@dataclass(frozen=True)
class ConnectionTest:
    """What "Test and save connection" found; `source` is set only when it saved."""

    checks: list[Check]
    api_url: ApiUrl | None = None
    source: source_registry.SourceInfo | None = None
    errors: dict[str, str] = field(default_factory=dict)  # form field -> sentence

    @property
    def ok(self) -> bool:
        return self.source is not None


def current_connection(state: StateDB) -> source_registry.SourceInfo | None:
    """The Kandji connection mappings use by default: the source saved most recently."""
    with state.session() as session:
        source = session.scalar(
            select(Source).order_by(Source.updated_at.desc(), Source.created_at.desc()).limit(1)
        )
        return source_registry.source_info(source) if source else None


def test_and_save_connection(
    settings: Settings, state: StateDB, base_url: str, api_key: str
) -> ConnectionTest:
    """Check the URL, the key and both device permissions; save only if all of them pass."""
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
                wanted=(DEVICE_LIST, DEVICE_DETAILS),
            )
        )
    except InvalidTokenError as exc:  # not something a Kandji token can be
        return ConnectionTest([], api_url, errors={"api_key": str(exc)})
    checks = [_as_integration(check, api_url) for check in report.checks if check.ok is not None]
    failed = next((check for check in checks if check.ok is False), None)
    if failed is not None:
        where = "base_url" if failed.name == BASE_URL else "api_key"
        return ConnectionTest(checks, api_url, errors={where: failed.detail})
    return ConnectionTest(checks, api_url, _save_connection(state, api_url, api_key))


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


def _save_connection(state: StateDB, api_url: ApiUrl, token: str) -> source_registry.SourceInfo:
    existing = source_registry.find_source_by_url(state, api_url.base_url)
    if existing is not None:
        return source_registry.set_source_token(state, existing.name, token)
    base = connection_name(api_url)
    for attempt in range(1, 100):
        name = base if attempt == 1 else f"{base}-{attempt}"
        try:
            return source_registry.add_source(
                state, name, api_url.base_url, token, logs_enabled=False
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
