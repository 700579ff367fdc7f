"""The admin list from a hostile server: a cursor cycle, a list without end and a server without
the endpoint all end after few requests, and the actor directory carries on without names."""

import asyncio
import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hostile.kandji import (
    ADMINS_PATH,
    Behaviour,
    HostileKandji,
    Reply,
    Request,
    json_reply,
    running,
)
from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.db.state import StateDB
from kandji_bridge.kandji.client import MAX_ADMIN_PAGES, KandjiClient
from kandji_bridge.kandji.errors import EndpointNotFoundError, PagingError
from kandji_bridge.logs import actors


def admin(number: int) -> dict:
    return {
        "id": f"admin-{number}",
        "email": f"admin{number}@example.com",
        "first_name": "Admin",
        "last_name": str(number),
        "role": "admin",
        "is_active": True,
    }


def cycling(period: int) -> Behaviour:
    """Pages 0..period-1, whose last `next` points back at page 0."""

    def reply(request: Request, server: HostileKandji) -> Reply:
        page = int(base64.b64decode(request.params.get("cursor", "MA==")).decode())
        cursor = base64.b64encode(str((page + 1) % period).encode()).decode()
        return json_reply(
            {"next": server.next_url(request, cursor), "previous": None, "results": [admin(page)]}
        )

    return reply


def endless(request: Request, server: HostileKandji) -> Reply:
    """A new admin and a new cursor on every page, for ever."""
    page = int(request.params.get("cursor", "0"))
    return json_reply(
        {
            "next": server.next_url(request, str(page + 1)),
            "previous": None,
            "results": [admin(page)],
        }
    )


@pytest.fixture
def hostile() -> Iterator[HostileKandji]:
    with running() as server:
        yield server


def list_admins(server: HostileKandji) -> list[dict]:
    async def run() -> list[dict]:
        async with KandjiClient(
            server.url, server.token, allowed_hosts=frozenset({server.host_port})
        ) as client:
            return [a async for a in client.iter_admins()]

    return asyncio.run(run())


def test_a_cursor_cycle_in_the_admin_list_ends_with_one_sentence(hostile: HostileKandji) -> None:
    hostile.admins = cycling(3)
    with pytest.raises(PagingError, match=r"admin list .*\(a cursor cycle\)") as raised:
        list_admins(hostile)
    assert hostile.token not in str(raised.value)
    assert hostile.count(ADMINS_PATH) <= 4


def test_an_admin_list_without_end_stops_at_the_page_limit(hostile: HostileKandji) -> None:
    hostile.admins = endless
    with pytest.raises(PagingError, match="was still paging"):
        list_admins(hostile)
    assert hostile.count(ADMINS_PATH) == MAX_ADMIN_PAGES


def test_the_directory_carries_on_when_the_admin_list_fails(
    hostile: HostileKandji, home: Path
) -> None:
    """A server without the endpoint (404): no names, no exception, not asked on every poll."""
    with pytest.raises(EndpointNotFoundError):
        list_admins(hostile)
    with open_state(load_settings(home)) as state:
        source_id = sources.add_source(state, "acme", hostile.url, hostile.token).id
        assert refresh(state, hostile, source_id).outcome == "failed"
        assert refresh(state, hostile, source_id).outcome == "cached"
        assert actors.resolve(state, ["admin-1"])["admin-1"].kind == actors.UNKNOWN
    assert hostile.count(ADMINS_PATH) == 2  # the direct listing, then the directory's one


def refresh(state: StateDB, server: HostileKandji, source_id: str) -> actors.AdminsRead:
    async def run() -> actors.AdminsRead:
        async with KandjiClient(
            server.url, server.token, allowed_hosts=frozenset({server.host_port})
        ) as client:
            return await actors.refresh_admins(state, source_id, client, now=datetime.now(UTC))

    return asyncio.run(run())
