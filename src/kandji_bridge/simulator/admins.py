"""`GET /api/v1/admins`: the tenant's admins, paged with `next` as Kandji's other cursor-paged
lists are (the users list's cursor is base64 of `p=<position>`; so is this one's).

Kandji's OpenAPI file does not document this endpoint. The fields are those Elastic's Kandji
(Iru) integration reads to name the people behind `actor_id`: `id`, `email`, `first_name`,
`last_name`, `role`, `is_active`.
"""

import base64
import binascii
from typing import Any

from kandji_bridge.simulator.audit import QueryError
from kandji_bridge.simulator.tenant import Admin, Tenant

DEFAULT_LIMIT = 100
MAX_LIMIT = 300


def admin_json(admin: Admin, active: bool) -> dict[str, Any]:
    first, _, last = admin.name.partition(" ")
    return {
        "id": admin.id,
        "email": admin.email,
        "first_name": first,
        "last_name": last,
        "role": admin.role,
        "is_active": active,
    }


def page(tenant: Tenant, params: dict[str, str]) -> tuple[list[dict[str, Any]], str | None]:
    """One page of admins in the tenant's order, and the cursor of the next page (None: last).
    A tenant's last admin (of more than three) left: listed, but not active."""
    limit = _limit(params.get("limit"))
    start = _position(params["cursor"]) if params.get("cursor") else 0
    admins = tenant.admins
    inactive = len(admins) - 1 if len(admins) > 3 else None
    chosen = [
        admin_json(admins[index], index != inactive)
        for index in range(start, min(start + limit, len(admins)))
    ]
    end = start + len(chosen)
    return chosen, _cursor(end) if end < len(admins) else None


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise QueryError(400, {"limit": ["A valid integer is required."]}) from None
    if limit < 1:
        raise QueryError(400, {"limit": ["Ensure this value is greater than or equal to 1."]})
    return min(limit, MAX_LIMIT)


def _cursor(position: int) -> str:
    return base64.b64encode(f"p={position}".encode()).decode()


def _position(cursor: str) -> int:
    """DRF answers a cursor it cannot read with 404 "Invalid cursor"; so do we."""
    try:
        text = base64.b64decode(cursor, validate=True).decode()
        if not text.startswith("p="):
            raise ValueError(text)
        position = int(text[2:])
        if position < 0:
            raise ValueError(text)
        return position
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise QueryError(404, {"detail": "Invalid cursor"}) from None
