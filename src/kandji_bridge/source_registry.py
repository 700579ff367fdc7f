"""The registry of Kandji sources behind `source add/list/remove` and `verify NAME`.

A source is a tenant's API URL plus its token; the token is encrypted before it is stored and
only `get_source_token` ever decrypts it. The URL is stored as given: callers normalise it first.
"""

import re
import shlex
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kandji_bridge import redact
from kandji_bridge.config import DEFAULT_POLL_INTERVAL, DEFAULT_RETENTION_DAYS
from kandji_bridge.db.models import Mapping, Source
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import AlreadyExists, BridgeError, ConfigError, NotFound
from kandji_bridge.token_vault import decrypt_token, encrypt_token

NAME_MAX_LENGTH = 64
DISPLAY_NAME_MAX_LENGTH = 200  # the column's size
API_URL_MAX_LENGTH = 2048  # the column's size
_NAME_CHARACTER = re.compile(r"[\w .-]")
POLL_INTERVAL_RANGE = (1, 86_400)
RETENTION_DAYS_RANGE = (1, 3650)


class InvalidSource(BridgeError):
    """A source's name, URL, token, poll interval or retention is not acceptable."""


@dataclass(frozen=True)
class SourceInfo:
    """A source as the rest of the product sees it. No token here, so none can leak by printing."""

    id: str
    name: str
    api_url: str
    poll_interval_seconds: int
    retention_days: int
    created_at: datetime
    updated_at: datetime
    logs_enabled: bool = True  # False: made by the Integrations flow to import devices only
    # Permission keys (kandji/permissions.py) the token had when last saved or verified;
    # None: never checked (added with --no-verify, or before permissions were recorded).
    permissions: tuple[str, ...] | None = None
    display_name: str | None = None

    @property
    def shown_name(self) -> str:
        return self.display_name or self.name


def add_source(
    state: StateDB,
    name: str,
    api_url: str,
    token: str,
    poll_interval: int = DEFAULT_POLL_INTERVAL,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    *,
    logs_enabled: bool = True,
    permissions: tuple[str, ...] | None = None,
) -> SourceInfo:
    name = validate_name(name)
    if not api_url.strip():
        raise InvalidSource("The source's API URL is empty; give the tenant's Kandji API URL.")
    if len(api_url) > API_URL_MAX_LENGTH:
        raise InvalidSource(
            f"The source's API URL is {len(api_url)} characters long; "
            f"a Kandji API URL is far shorter (at most {API_URL_MAX_LENGTH})."
        )
    token = token.strip()
    if not token:
        raise InvalidSource("The source's API token is empty; give the token made in Kandji.")
    _check_range("The poll interval", poll_interval, POLL_INTERVAL_RANGE, "seconds")
    _check_range("The retention", retention_days, RETENTION_DAYS_RANGE, "days")
    source = Source(
        name=name,
        api_url=api_url,
        token_ciphertext=encrypt_token(state.settings, token),
        poll_interval_seconds=poll_interval,
        retention_days=retention_days,
        logs_enabled=logs_enabled,
        permissions=_joined(permissions),
    )
    try:
        with state.session() as session:
            if session.scalar(select(Source.id).where(Source.name == name)) is not None:
                raise already_exists(name)
            session.add(source)
    except IntegrityError:
        # Another process added the same name between our check and our insert.
        raise already_exists(name) from None
    return source_info(source)


def list_sources(state: StateDB) -> list[SourceInfo]:
    with state.session() as session:
        return [
            source_info(source) for source in session.scalars(select(Source).order_by(Source.name))
        ]


def get_source(state: StateDB, name: str) -> SourceInfo:
    with state.session() as session:
        return source_info(_find(session, name))


def get_source_token(state: StateDB, name: str) -> str:
    """The source's plain token, for the Kandji client only. It is registered with `redact` as
    it leaves the vault, so no output or log line of this process can show it."""
    with state.session() as session:
        source = _find(session, name)
        ciphertext, shown = source.token_ciphertext, shlex.quote(source.name)
    token = decrypt_token(state.settings, ciphertext, what=f"The token of source {shown}")
    redact.remember(token)
    return token


def tokens_readable(state: StateDB) -> bool:
    """Whether this process's secret key reads the stored tokens: True if it reads at least one,
    or none is stored. A `serve` whose key reads none has another key than the serves (or the
    commands) that stored them."""
    with state.session() as session:
        stored = session.scalars(select(Source.token_ciphertext)).all()
    for ciphertext in stored:
        try:
            decrypt_token(state.settings, ciphertext)
        except ConfigError:
            continue
        return True
    return not stored


def find_source_by_url(state: StateDB, api_url: str) -> SourceInfo | None:
    """The source reading this API URL (as stored: normalised), if there is one."""
    with state.session() as session:
        source = session.scalar(
            select(Source).where(Source.api_url == api_url).order_by(Source.created_at).limit(1)
        )
        return source_info(source) if source else None


def set_source_token(
    state: StateDB, name: str, token: str, permissions: tuple[str, ...] | None = None
) -> SourceInfo:
    """Replace a source's token (after the new one was tested), with what it was found to allow."""
    return update_source(state, name, token=token, permissions=permissions)


def update_source(
    state: StateDB,
    name: str,
    *,
    token: str | None = None,
    permissions: tuple[str, ...] | None = None,
    poll_interval: int | None = None,
    retention_days: int | None = None,
    display_name: str | None = None,
) -> SourceInfo:
    """Change what is given, in one transaction; None leaves a setting as it is. A display name
    of "" clears it. Callers verify a new token before they pass it."""
    if token is not None:
        token = token.strip()
        if not token:
            raise InvalidSource("The source's API token is empty; give the token made in Kandji.")
    if poll_interval is not None:
        _check_range("The poll interval", poll_interval, POLL_INTERVAL_RANGE, "seconds")
    if retention_days is not None:
        _check_range("The retention", retention_days, RETENTION_DAYS_RANGE, "days")
    if display_name is not None:
        display_name = display_name.strip()
        if len(display_name) > DISPLAY_NAME_MAX_LENGTH:
            raise InvalidSource(
                f"The display name is {len(display_name)} characters long; "
                f"use at most {DISPLAY_NAME_MAX_LENGTH}."
            )
    with state.session() as session:
        source = _find(session, name)
        if token is not None:
            source.token_ciphertext = encrypt_token(state.settings, token)
        if permissions is not None:
            source.permissions = _joined(permissions)
        if poll_interval is not None:
            source.poll_interval_seconds = poll_interval
        if retention_days is not None:
            source.retention_days = retention_days
        if display_name is not None:
            source.display_name = display_name or None
        session.flush()
        return source_info(source)


def record_permissions(state: StateDB, name: str, permissions: tuple[str, ...]) -> SourceInfo:
    """Store what the source's token was just found to allow (by `verify NAME`)."""
    return update_source(state, name, permissions=permissions)


def _joined(permissions: tuple[str, ...] | None) -> str | None:
    return None if permissions is None else ",".join(permissions)


def remove_source(state: StateDB, name: str) -> SourceInfo:
    """Delete a source and its token; refused while a mapping uses it as its Kandji connection."""
    with state.session() as session:
        source = _find(session, name)
        users = session.scalars(
            select(Mapping.name).where(Mapping.source_id == source.id).order_by(Mapping.name)
        ).all()
        if users:
            listed = ", ".join(shlex.quote(user) for user in users)
            used_by = (
                f"Source {shlex.quote(source.name)} is the Kandji connection of mapping {listed}; "
            )
            raise InvalidSource(
                used_by + "remove the mapping first with `kandji-bridge mapping remove NAME`.",
                in_web=used_by + "remove the mapping first on its page under Integrations.",
            )
        session.delete(source)
    return source_info(source)


def validate_name(name: str) -> str:
    """The name without surrounding spaces, or InvalidSource saying what to change."""
    name = name.strip()
    allowed = "letters, digits, spaces, dashes (-), underscores (_) and dots (.)"
    if not name:
        raise InvalidSource(f"The source name is empty; use 1 to {NAME_MAX_LENGTH} {allowed}.")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidSource(
            f"The source name is {len(name)} characters long; use at most {NAME_MAX_LENGTH}."
        )
    bad = sorted({character for character in name if not _NAME_CHARACTER.fullmatch(character)})
    if bad:
        shown = " ".join(repr(character) for character in bad)
        raise InvalidSource(f"The source name contains {shown}; use only {allowed}.")
    return name


def _check_range(what: str, value: int, bounds: tuple[int, int], unit: str) -> None:
    low, high = bounds
    # bool is an int in Python; True seconds is a bug upstream, not a setting.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSource(
            f"{what} must be a whole number of {unit} from {low} to {high}, not {value!r}."
        )


def _find(session: Session, name: str) -> Source:
    source = session.scalar(select(Source).where(Source.name == name.strip()))
    if source is None:
        missing = f"No source named {shlex.quote(name.strip())}; "
        raise NotFound(
            missing + "`kandji-bridge source list` shows the names.",
            in_web=missing + "the Sources page lists the names.",
        )
    return source


def already_exists(name: str) -> AlreadyExists:
    shown = shlex.quote(name)
    taken = f"A source named {shown} already exists; pick another name "
    return AlreadyExists(
        taken + f"or remove it with `kandji-bridge source remove {shown}`.",
        in_web=taken + "or remove that source first from its page under Sources.",
    )


def source_info(source: Source) -> SourceInfo:
    """The SourceInfo of a row already loaded (inside another transaction, say)."""
    return SourceInfo(
        id=source.id,
        name=source.name,
        api_url=source.api_url,
        poll_interval_seconds=source.poll_interval_seconds,
        retention_days=source.retention_days,
        created_at=source.created_at,
        updated_at=source.updated_at,
        logs_enabled=source.logs_enabled,
        permissions=None
        if source.permissions is None
        else tuple(key for key in source.permissions.split(",") if key),
        display_name=source.display_name,
    )
