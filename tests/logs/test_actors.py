"""Actors a security analyst can read: the simulated tenant's admins over real HTTP (with and
without the permission to list them), API tokens named by their own events in a real chDB store,
and what a `view` event showed."""

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.db.state import StateDB
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.permissions import ADMINS
from kandji_bridge.logs import actors
from kandji_bridge.logs.collector import CollectorSource, collect
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.simulator.config import PERMISSION_KEYS
from kandji_bridge.simulator.server import RunningSimulator

FULL, NO_ADMINS = "full-token", "no-admins-token"


@pytest.fixture
def tenant(simulator_factory: Callable[..., RunningSimulator]) -> RunningSimulator:
    return simulator_factory(
        devices=10,
        events=300,
        history_days=30,
        seed=11,
        tokens={FULL: PERMISSION_KEYS, NO_ADMINS: PERMISSION_KEYS - {ADMINS.key}},
    )


@pytest.fixture
def state(home: Path) -> Iterator[StateDB]:
    with open_state(load_settings(home)) as state:
        yield state


def admin_requests(tenant: RunningSimulator) -> int:
    """Requests the tenant answered on the admin list."""
    return tenant.stats.by_endpoint[f"GET {ADMINS.path}"]


def refresh(
    state: StateDB, tenant: RunningSimulator, token: str, source_id: str, now: datetime
) -> actors.AdminsRead:
    async def run() -> actors.AdminsRead:
        async with KandjiClient(
            tenant.base_url, token, allowed_hosts=frozenset({tenant.host_port})
        ) as client:
            return await actors.refresh_admins(state, source_id, client, now=now)

    return asyncio.run(run())


def add_source(state: StateDB, tenant: RunningSimulator, token: str) -> str:
    return sources.add_source(state, "acme", tenant.base_url, token).id


def test_admins_show_as_people_and_are_read_again_only_after_the_refresh_time(
    state: StateDB, tenant: RunningSimulator
) -> None:
    source_id = add_source(state, tenant, FULL)
    now = datetime.now(UTC)
    assert refresh(state, tenant, FULL, source_id, now) == actors.AdminsRead(
        "read", len(tenant.tenant.admins)
    )
    admin = tenant.tenant.admins[0]
    names = actors.resolve(state, [admin.id, "", "someone-else"])
    assert names[admin.id] == actors.ActorName(admin.name, actors.PERSON, admin.email)
    assert names["someone-else"] == actors.ActorName("someone-else", actors.UNKNOWN)
    assert "" not in names

    # Within the refresh time the cache answers; after it, Kandji is asked again.
    assert refresh(state, tenant, FULL, source_id, now + timedelta(minutes=5)).outcome == "cached"
    assert admin_requests(tenant) == 1
    later = now + actors.ADMINS_REFRESH + timedelta(seconds=1)
    assert refresh(state, tenant, FULL, source_id, later).outcome == "read"
    assert admin_requests(tenant) == 2


def test_a_token_without_the_admins_permission_is_remembered_and_names_stay_ids(
    state: StateDB, tenant: RunningSimulator
) -> None:
    source_id = add_source(state, tenant, NO_ADMINS)
    now = datetime.now(UTC)
    assert refresh(state, tenant, NO_ADMINS, source_id, now).outcome == "denied"
    assert actors.admins_denied(state, source_id)
    for minutes in (1, 60, 600):  # every poll of the day: not asked again
        later = now + timedelta(minutes=minutes)
        assert refresh(state, tenant, NO_ADMINS, source_id, later).outcome == "cached"
    assert admin_requests(tenant) == 1
    admin = tenant.tenant.admins[0]
    assert actors.resolve(state, [admin.id])[admin.id].kind == actors.UNKNOWN

    # Granted later: the next day's try reads the names.
    tenant.state.grant_permission(NO_ADMINS, ADMINS.key)
    next_day = now + actors.DENIED_RETRY + timedelta(seconds=1)
    assert refresh(state, tenant, NO_ADMINS, source_id, next_day).outcome == "read"
    assert not actors.admins_denied(state, source_id)
    assert actors.resolve(state, [admin.id])[admin.id].kind == actors.PERSON


def test_the_admin_list_is_paged_with_next(tenant: RunningSimulator) -> None:
    async def listed() -> list[dict]:
        async with KandjiClient(
            tenant.base_url, FULL, allowed_hosts=frozenset({tenant.host_port})
        ) as client:
            return [admin async for admin in client.iter_admins(limit=2)]

    admins = asyncio.run(listed())
    assert [a["id"] for a in admins] == [a.id for a in tenant.tenant.admins]
    assert set(admins[0]) == {"id", "email", "first_name", "last_name", "role", "is_active"}
    pages = -(-len(admins) // 2)
    assert admin_requests(tenant) == pages


def test_api_token_actors_are_named_by_their_creation_events_in_the_store(
    state: StateDB, tenant: RunningSimulator, tmp_path: Path
) -> None:
    token_id = "5b0c54e6-7a0b-4b53-9c6f-1a2b3c4d5e6f"
    admin = tenant.tenant.admins[0]
    tenant.state.add_event(
        "create",
        "api_token",
        token_id,
        new_state={"label": "Okta Workflows", "permissions": []},
        occurred_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    tenant.state.add_event("update", "api_token", token_id, new_state={"label": "Okta sync"})
    tenant.state.add_event("update", "device", "d-1", "device_name", actor=(token_id, "api_token"))
    store = ChdbLogStore(str(tmp_path / "logs"))
    store.ensure_schema()
    try:

        async def sync() -> None:
            async with KandjiClient(
                tenant.base_url, FULL, allowed_hosts=frozenset({tenant.host_port})
            ) as client:
                result = await collect(client, store, CollectorSource("s1", "acme", 3650), "ws")
                assert result.error is None

        asyncio.run(sync())
        result = store.query(actors.TOKEN_EVENTS_SQL)
        rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    finally:
        store.close()
    labels = actors.token_labels(rows)
    assert labels[token_id] == "Okta sync"  # renamed: the current label
    # The simulated history's own token events name its tokens too.
    assert {t.id: t.label for t in tenant.tenant.tokens}.items() >= {
        k: v for k, v in labels.items() if k != token_id
    }.items()
    names = actors.resolve(state, [token_id, admin.id], labels)
    assert names[token_id] == actors.ActorName("Okta sync", actors.TOKEN)
    assert names[admin.id].kind == actors.UNKNOWN  # admins not read: an id, not a guess


def test_a_view_event_says_what_was_seen(tenant: RunningSimulator) -> None:
    views = [e for e in tenant.events() if e["action"] == "view"]
    assert views, "the simulated history has secret views"
    seen = {
        actors.what_was_viewed(e["action"], e["target_type"], e["target_component"]) for e in views
    }
    assert seen <= {
        "FileVault recovery key",
        "Recovery Lock password",
        "Activation Lock bypass code",
    }
    assert actors.what_was_viewed("view", "device", "unlock_pin") == "device unlock PIN"
    assert actors.what_was_viewed("view", "device", "wifi_password") == "wifi password"
    assert actors.what_was_viewed("update", "device", "filevault_key") is None
