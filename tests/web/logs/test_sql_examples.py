"""The SQL page's example queries return what their titles promise, on a store one collector pass
filled from the simulated tenant; and the page says what a query can read."""

import asyncio
import html
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.ratelimit import RateLimiter
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.logs.collector import CollectorSource, collect
from kandji_bridge.logs.schema import COLUMN_NAMES, COLUMNS
from kandji_bridge.logs.sql_guard import OUTSIDE_READING_FUNCTIONS
from kandji_bridge.operations.queries import run_query
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator
from kandji_bridge.web.logs.pages import EXAMPLE_QUERIES

SOURCE = CollectorSource(id="src-examples", name="acme", retention_days=365)


@pytest.fixture
def filled(allow_simulator: RunningSimulator, runtime: Runtime) -> list[dict]:
    """The tenant's history in the store, and the events the simulator served."""

    async def go() -> None:
        client = KandjiClient(
            ApiUrl(allow_simulator.base_url),
            allow_simulator.token,
            limiter=RateLimiter(1000, 1_000_000),
        )
        async with client:
            result = await collect(
                client, runtime.store, SOURCE, "ws-examples", enricher=runtime.enricher
            )
        assert result.error is None and result.stored == 1200

    asyncio.run(go())
    return allow_simulator.events()


def example(runtime: Runtime, title: str) -> list[dict]:
    sql = dict(EXAMPLE_QUERIES)[title]
    return run_query(runtime.store, sql, user="analyst").records()


def occurred(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))


def test_every_example_returns_what_its_title_says(
    runtime: Runtime, filled: list[dict], allow_simulator: RunningSimulator
) -> None:
    tenant = allow_simulator.tenant
    now = datetime.now(UTC)
    for title, _ in EXAMPLE_QUERIES:
        assert example(runtime, title), f"{title!r} returned no rows"

    per_name = example(runtime, "Events per eventName in the last 7 days")
    week = [e for e in filled if occurred(e) >= now - timedelta(days=7)]
    assert abs(sum(row["events"] for row in per_name) - len(week)) <= 2  # the edge moves

    countries = example(runtime, "Countries of source IPs")
    assert all(len(row["country"]) == 2 and row["addresses"] >= 1 for row in countries)

    actors = example(runtime, "Most active actors in the last 30 days")
    known = {admin.id for admin in tenant.admins} | {token.id for token in tenant.tokens}
    assert {row["actorId"] for row in actors} <= known
    counts = [row["events"] for row in actors]
    assert counts == sorted(counts, reverse=True)
    emails = {admin.id: admin.email for admin in tenant.admins}
    assert any(row["email"] == emails.get(row["actorId"]) for row in actors)

    filevault = example(runtime, "FileVault recovery keys viewed")
    served = [
        e for e in filled if e["action"] == "view" and e["target_component"] == "filevault_key"
    ]
    assert len(filevault) == min(len(served), 100)
    assert {row["targetComponent"] for row in filevault} == {"filevault_key"}
    assert {row["device"] for row in filevault} <= {
        d.device_id for d in tenant.devices_by_id.values()
    }

    secrets = example(runtime, "Device secrets viewed, by kind")
    views = [e for e in filled if e["action"] == "view"]
    assert {row["secret"]: row["views"] for row in secrets} == {
        component: sum(e["target_component"] == component for e in views)
        for component in {e["target_component"] for e in views}
    }

    tokens = example(runtime, "API tokens created, changed or deleted")
    labels = {token.id: token.label for token in tenant.tokens}
    assert tokens and all(labels[row["token"]] == row["label"] for row in tokens)
    assert {row["action"] for row in tokens} <= {"create", "update", "delete"}

    described = example(runtime, "The table's columns")
    assert [row["name"] for row in described] == list(COLUMN_NAMES)


def test_the_sql_page_says_what_a_query_can_read(client: TestClient) -> None:
    page = html.unescape(client.get("/logs/sql").text)
    help_text = page.split('id="sql-help"', 1)[1].split("</section>", 1)[0]
    assert "kandji_logs" in help_text and f"{len(COLUMNS)} columns" in help_text
    for name, type_ in COLUMNS:
        assert f'<code>{name}</code> <span class="muted mono">{type_}</span>' in help_text
    for function in OUTSIDE_READING_FUNCTIONS:
        assert f"<code>{function}()</code>" in help_text
    assert "action = 'view'" in help_text
