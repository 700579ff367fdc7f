"""Logs an analyst can read: sources by name (a removed one greyed), actors as people or tokens
with their id one click away, what a `view` showed; against a chDB store and the state DB."""

import html
import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.db.models import KandjiAdmin, KandjiAdminsRead
from kandji_bridge.logs.normalize import NormalizeContext, normalize
from kandji_bridge.service.runtime import Runtime

ANA = "7f1c2d3e-0000-4000-8000-0000000000a1"
TOKEN = "7f1c2d3e-0000-4000-8000-0000000000b1"
DEVICE = "5c6c7d04-0000-4000-8000-00000000d002"
GONE = "src-removed-since"


def audit(number: int, minutes_ago: int, now: datetime, **fields: object) -> tuple[dict, str]:
    data = {
        "id": f"01JANALYST{number:016d}",
        "action": "update",
        "occurred_at": (now - timedelta(minutes=minutes_ago)).isoformat(),
        "actor_id": ANA,
        "actor_type": "user",
        "target_id": f"bp-{number}",
        "target_type": "blueprint",
        "target_component": "",
        "new_state": {},
        "metadata": {},
        **fields,
    }
    return data, json.dumps(data)


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def tenants(runtime: Runtime, now: datetime) -> dict[str, str]:
    """Two registered sources and one removed since, each with stored events; Ana is an admin
    of acme, and a token names itself in its own creation event."""
    acme = sources.add_source(runtime.state, "acme", "https://acme.api.kandji.io", "t" * 36)
    globex = sources.add_source(runtime.state, "globex", "https://globex.api.kandji.io", "u" * 36)
    with runtime.state.session() as session:
        session.add(
            KandjiAdmin(
                source_id=acme.id,
                admin_id=ANA,
                email="ana@acme.example",
                first_name="Ana",
                last_name="Lopez",
            )
        )
    token_created = {
        "action": "create",
        "target_id": TOKEN,
        "target_type": "api_token",
        "new_state": {"label": "Okta sync", "permissions": []},
    }
    by_source = {
        acme.id: [
            audit(1, 5, now),
            audit(2, 10, now, **token_created),
            audit(3, 15, now, actor_id=TOKEN, actor_type="api_token"),
            audit(
                4,
                20,
                now,
                action="view",
                target_id=DEVICE,
                target_type="device",
                target_component="filevault_key",
            ),
        ],
        globex.id: [audit(5, 25, now, actor_id="8a8a8a8a-0000-4000-8000-0000000000c1")],
        GONE: [audit(6, 30, now)],
    }
    for source_id, events in by_source.items():
        ctx = NormalizeContext("ws-analyst", source_id, 36500, received_at=now)
        runtime.store.insert([normalize(data, raw, ctx) for data, raw in events])
    return {"acme": acme.id, "globex": globex.id}


def rows_of(page: str) -> list[str]:
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [html.unescape(row) for row in body.split('<tr class="clickable"')[1:]]


def event_page(client: TestClient, kandji_id: str) -> str:
    found = client.get("/api/logs/events", params={"q": kandji_id}).json()["events"]
    assert len(found) == 1
    return client.get(f"/logs/events/{found[0]['id']}").text


def test_rows_name_their_source_and_the_source_select_narrows_them(
    client: TestClient, tenants: dict[str, str]
) -> None:
    rows = rows_of(client.get("/logs").text)
    assert len(rows) == 6
    assert sum('class="source">acme<' in row for row in rows) == 4
    assert sum('class="source">globex<' in row for row in rows) == 1
    removed = [row for row in rows if "removed source" in row]
    assert len(removed) == 1 and "muted removed" in removed[0]
    page = client.get("/logs").text
    assert f'<option value="{tenants["globex"]}" >globex</option>' in page
    assert f'<option value="{GONE}" >removed source</option>' in page
    narrowed = client.get("/logs", params={"sourceID": tenants["globex"]}).text
    assert len(rows_of(narrowed)) == 1
    assert f'<option value="{tenants["globex"]}" selected>globex</option>' in narrowed
    # The select still offers the other sources once one is picked.
    assert f'<option value="{tenants["acme"]}" >acme</option>' in narrowed


def test_the_api_filters_events_by_source_and_names_it(
    api: TestClient, tenants: dict[str, str]
) -> None:
    found = api.get("/api/logs/events", params={"sourceID": tenants["acme"]}).json()["events"]
    assert len(found) == 4 and {event["source"] for event in found} == {"acme"}
    gone = api.get("/api/logs/events", params={"sourceID": GONE}).json()["events"]
    assert [event["source"] for event in gone] == ["removed source"]


def test_actors_show_as_people_and_tokens_with_their_id_one_click_away(
    client: TestClient, api: TestClient, tenants: dict[str, str]
) -> None:
    rows = rows_of(client.get("/logs").text)
    by_ana = [row for row in rows if "Ana Lopez" in row]
    assert len(by_ana) == 4 and all("ana@acme.example" in row for row in by_ana)
    assert all(f'href="/logs?actorId={ANA}"' in row for row in by_ana)
    by_token = [row for row in rows if f'title="actorId {TOKEN}">Okta sync</span>' in row]
    assert len(by_token) == 1 and '<span class="badge">token</span>' in by_token[0]
    # The id link narrows the explorer to that actor.
    assert len(rows_of(client.get("/logs", params={"actorId": TOKEN}).text)) == 1
    named = api.get("/api/logs/events", params={"actorId": ANA}).json()["events"]
    assert {(e["actorName"], e["actorKind"]) for e in named} == {("Ana Lopez", "person")}
    token = api.get("/api/logs/events", params={"actorId": TOKEN}).json()["events"]
    assert [(e["actorName"], e["actorKind"]) for e in token] == [("Okta sync", "token")]


def test_the_event_page_names_the_actor_and_says_why_names_are_missing(
    runtime: Runtime, client: TestClient, tenants: dict[str, str]
) -> None:
    page = html.unescape(event_page(client, "01JANALYST0000000000000001"))
    assert "Ana Lopez" in page and "ana@acme.example" in page and f"actorId={ANA}" in page
    assert ">acme<" in page and "Names of people are missing" not in page
    token_page = html.unescape(event_page(client, "01JANALYST0000000000000003"))
    assert "Okta sync" in token_page
    with runtime.state.session() as session:
        session.add(
            KandjiAdminsRead(source_id=tenants["globex"], read_at=datetime.now(UTC), denied=True)
        )
    unnamed = html.unescape(event_page(client, "01JANALYST0000000000000005"))
    assert "Names of people are missing" in unnamed and '"List admins"' in unnamed
    assert ">globex<" in unnamed


def test_a_view_says_what_was_viewed_in_its_row_and_on_its_page(
    client: TestClient, api: TestClient, tenants: dict[str, str]
) -> None:
    rows = rows_of(client.get("/logs").text)
    viewed = [row for row in rows if "device.view" in row]
    assert len(viewed) == 1 and "viewed: FileVault recovery key" in viewed[0]
    assert sum("viewed:" in row for row in rows) == 1
    page = event_page(client, "01JANALYST0000000000000004")
    assert '<dd class="viewed">FileVault recovery key</dd>' in page
    found = api.get("/api/logs/events", params={"targetId": DEVICE}).json()["events"]
    assert [e["viewed"] for e in found] == ["FileVault recovery key"]
