"""Who did it, and what they saw: audit events' actor ids as people or API tokens.

Kandji's audit events name their actor by id only. A `user` actor is one of the tenant's admins,
listed by `GET /api/v1/admins` (Elastic's Kandji integration reads names there too); the list is
cached per source in the state DB, read again at most every ADMINS_REFRESH, through the source's
client and so within the tenant's shared request budget. A token that may not read it (403) is
remembered and asked again only after DENIED_RETRY: names are a bonus, nothing waits for them.
An `api_token` actor is named by the label its own creation (or update) event carries in
`new_state.label`; those events come from the log store's rows, handed over by the caller.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select

from kandji_bridge.db.models import KandjiAdmin, KandjiAdminsRead
from kandji_bridge.db.state import StateDB
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import KandjiError, PermissionDeniedError
from kandji_bridge.logs.schema import LOGS_TABLE

log = logging.getLogger(__name__)

ADMINS_REFRESH = timedelta(minutes=60)  # admins change rarely; one request an hour per tenant
DENIED_RETRY = timedelta(hours=24)  # the permission may be granted later: ask again once a day

PERSON, TOKEN, UNKNOWN = "person", "token", "unknown"

# The rows token_labels() reads: every API-token event that carries a label, oldest first.
TOKEN_EVENTS_SQL = (
    f"SELECT targetId, newState, occurredAt FROM {LOGS_TABLE} "  # noqa: S608 (constants only)
    "WHERE targetType = 'api_token' AND action IN ('create', 'update') ORDER BY occurredAt"
)

# What a `view` of a device's target_component showed, in Kandji's words.
VIEWED = {
    "filevault_key": "FileVault recovery key",
    "filevault": "FileVault recovery key",
    "recovery_key": "FileVault recovery key",
    "recovery_password": "Recovery Lock password",
    "recovery_lock_password": "Recovery Lock password",
    "activation_lock_bypass_code": "Activation Lock bypass code",
    "bypass_code": "Activation Lock bypass code",
    "unlock_pin": "device unlock PIN",
    "unlockpin": "device unlock PIN",
    "lock_pin": "device lock PIN",
    "local_admin_password": "local administrator password",
    "admin_password": "local administrator password",
    "passcode": "device passcode",
}


@dataclass(frozen=True)
class ActorName:
    display: str  # a person's name (or email), a token's label, or the id itself
    kind: str  # PERSON, TOKEN or UNKNOWN
    email: str = ""


@dataclass(frozen=True)
class AdminsRead:
    """What refresh_admins did: "read" (with how many admins), "cached" (read recently, or
    refused recently), "denied" (403 now) or "failed" (another error, logged)."""

    outcome: str
    admins: int = 0


async def refresh_admins(
    state: StateDB, source_id: str, client: KandjiClient, now: datetime | None = None
) -> AdminsRead:
    """Read the source's admins into the state DB unless they were read within ADMINS_REFRESH
    (or refused within DENIED_RETRY). Never raises for Kandji's answer: a 403 is remembered, any
    other failure is logged and tried again after ADMINS_REFRESH; the cached names are kept."""
    now = now or datetime.now(UTC)
    with state.session() as session:
        last = session.get(KandjiAdminsRead, source_id)
        if last is not None:
            wait = DENIED_RETRY if last.denied else ADMINS_REFRESH
            if now - last.read_at < wait:
                return AdminsRead("cached")
    try:
        admins = [admin async for admin in client.iter_admins()]
    except PermissionDeniedError:
        _record_read(state, source_id, now, denied=True)
        return AdminsRead("denied")
    except KandjiError as exc:
        log.warning("Reading the admins of %s for actor names failed: %s", client.host, exc)
        _record_read(state, source_id, now, denied=False)
        return AdminsRead("failed")
    with state.session() as session:
        session.execute(delete(KandjiAdmin).where(KandjiAdmin.source_id == source_id))
        seen: set[str] = set()
        for admin in admins:
            admin_id = str(admin["id"])[:64]
            if admin_id in seen:  # a list that shifted while paging may repeat one
                continue
            seen.add(admin_id)
            session.add(
                KandjiAdmin(
                    source_id=source_id,
                    admin_id=admin_id,
                    email=_text(admin.get("email"), 320),
                    first_name=_text(admin.get("first_name"), 255),
                    last_name=_text(admin.get("last_name"), 255),
                    role=_text(admin.get("role"), 64),
                    is_active=admin.get("is_active") is not False,
                )
            )
    _record_read(state, source_id, now, denied=False)
    return AdminsRead("read", len(seen))


def _record_read(state: StateDB, source_id: str, now: datetime, *, denied: bool) -> None:
    with state.session() as session:
        row = session.get(KandjiAdminsRead, source_id)
        if row is None:
            session.add(KandjiAdminsRead(source_id=source_id, read_at=now, denied=denied))
        else:
            row.read_at, row.denied = now, denied


def admins_denied(state: StateDB, source_id: str) -> bool:
    """True when the source's token was last refused the admin list (the UI says why names are
    missing, and that "List admins" on the token adds them)."""
    with state.session() as session:
        row = session.get(KandjiAdminsRead, source_id)
        return row is not None and row.denied


def token_labels(rows: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """API-token id -> label, from stored `kandji_logs` rows of api_token events (targetId,
    newState, occurredAt: TOKEN_EVENTS_SQL selects them). The latest label wins (occurredAt
    keeps Kandji's microseconds), so a token renamed shows under its current name. Rows without
    a usable label are skipped."""
    dated: list[tuple[Any, str, str]] = []
    for row in rows:
        try:
            state = orjson.loads(row.get("newState") or "{}")
        except orjson.JSONDecodeError:
            continue
        label = state.get("label") if isinstance(state, dict) else None
        token_id = row.get("targetId")
        if isinstance(label, str) and label.strip() and token_id:
            dated.append((row.get("occurredAt") or "", str(token_id), label.strip()))
    dated.sort(key=lambda item: str(item[0]))
    return {token_id: label for _, token_id, label in dated}


def resolve(
    state: StateDB, actor_ids: Iterable[str], tokens: Mapping[str, str] | None = None
) -> dict[str, ActorName]:
    """Each non-empty actor id -> its name: an admin of any source (a person), a token labelled
    in `tokens` (from token_labels), or the id itself (unknown)."""
    wanted = sorted({actor_id for actor_id in actor_ids if actor_id})
    tokens = tokens or {}
    people: dict[str, ActorName] = {}
    if wanted:
        with state.session() as session:
            query = select(KandjiAdmin).where(KandjiAdmin.admin_id.in_(wanted))
            for admin in session.scalars(query):
                people.setdefault(admin.admin_id, _person(admin))
    names = {}
    for actor_id in wanted:
        if actor_id in people:
            names[actor_id] = people[actor_id]
        elif actor_id in tokens:
            names[actor_id] = ActorName(tokens[actor_id], TOKEN)
        else:
            names[actor_id] = ActorName(actor_id, UNKNOWN)
    return names


def _person(admin: KandjiAdmin) -> ActorName:
    display = f"{admin.first_name} {admin.last_name}".strip() or admin.email or admin.admin_id
    if not admin.is_active:
        display += " (no longer active)"
    return ActorName(display, PERSON, admin.email)


def what_was_viewed(action: str, target_type: str, target_component: str) -> str | None:
    """What a `view` event showed, in words (`device.view` of `filevault_key`: "FileVault
    recovery key"), or None for an event that viewed nothing. A component not known here is
    shown as Kandji names it, its underscores as spaces."""
    if action.lower() != "view":
        return None
    component = target_component.strip().lower().replace("-", "_").replace(" ", "_")
    if not component:
        return f"the {target_type.replace('_', ' ')}" if target_type else None
    return VIEWED.get(component, component.replace("_", " "))


def _text(value: object, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""
