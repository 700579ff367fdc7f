"""Editing a source over HTTP (PATCH /api/sources/{name} and the Edit form), what the Sources
pages say a token may do and what uses it, and registry refusals worded for the web."""

import html
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import parse_field_spec
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, parse_pair
from kandji_bridge.jobs import leases
from kandji_bridge.jobs import status as jobs
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

from .test_sources_api import WRONG_TOKEN, new_source

LOGS_ONLY_TOKEN = "sim-token-for-audit-logs-only"


@pytest.fixture
def kandji(home: Path, allow_simulator: RunningSimulator) -> RunningSimulator:
    """The simulator, allowed as a Kandji URL (`home` first: it clears KANDJI_BRIDGE_*)."""
    return allow_simulator


def added(api: TestClient, simulator: RunningSimulator) -> None:
    assert api.post("/api/sources", json=new_source(simulator)).status_code == 201


def with_mapping(runtime: Runtime) -> None:
    collections.create_collection(
        runtime.state, "ITAM", [parse_field_spec("Device ID:text:unique")]
    )
    mappings.create_mapping(
        runtime.state,
        MappingSpec("devices", "kandji-prod", "ITAM", parse_pair("device_id=Device ID")),
    )


def test_patch_rotates_the_token_and_keeps_the_events(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    kandji.state.set_token(LOGS_ONLY_TOKEN, {"audit"})
    added(api, kandji)
    assert api.post("/api/sources/kandji-prod/poll").json()["error"] is None
    before = api.get("/api/sources/kandji-prod").json()
    assert before["events_ingested"] > 0
    assert before["permissions"] == [
        "List audit events",
        "Device list",
        "Device details",
        "List admins",
    ]

    response = api.patch(
        "/api/sources/kandji-prod",
        json={
            "token": LOGS_ONLY_TOKEN,
            "poll_interval": 300,
            "retention_days": 400,
            "display_name": "Kandji (production)",
        },
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["changed"] == ["token", "poll interval", "retention", "display name"]
    assert body["source"]["permissions"] == ["List audit events"]
    assert body["source"]["used_by"] == ["the audit log collection of source kandji-prod"]
    assert (body["source"]["poll_interval"], body["source"]["retention_days"]) == (300, 400)
    assert body["source"]["display_name"] == "Kandji (production)"
    assert body["source"]["events_ingested"] == before["events_ingested"]
    assert LOGS_ONLY_TOKEN not in response.text
    assert sources.get_source_token(runtime.state, "kandji-prod") == LOGS_ONLY_TOKEN


def test_patch_with_a_token_kandji_refuses_changes_nothing(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    added(api, kandji)

    response = api.patch(
        "/api/sources/kandji-prod", json={"token": WRONG_TOKEN, "poll_interval": 300}
    )

    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        "The new token was not saved and source kandji-prod keeps its token"
    )
    assert WRONG_TOKEN not in response.text
    assert sources.get_source_token(runtime.state, "kandji-prod") == kandji.token
    assert api.get("/api/sources/kandji-prod").json()["poll_interval"] == 60


def test_patch_refuses_a_token_that_would_stop_a_mapping(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    kandji.state.set_token(LOGS_ONLY_TOKEN, {"audit"})
    added(api, kandji)
    with_mapping(runtime)

    response = api.patch("/api/sources/kandji-prod", json={"token": LOGS_ONLY_TOKEN})

    assert response.status_code == 400
    assert response.json()["detail"].startswith(
        'This token lacks "Device list" (GET /api/v1/devices), which mapping devices uses'
    )
    assert sources.get_source_token(runtime.state, "kandji-prod") == kandji.token


def test_the_edit_form_refuses_a_bad_token_and_saves_a_display_name(
    kandji: RunningSimulator, api: TestClient, client: TestClient, runtime: Runtime
) -> None:
    added(api, kandji)
    form = client.get("/sources/kandji-prod/edit")
    assert form.status_code == 200 and 'data-testid="edit-form"' in form.text

    refused = client.post(
        "/sources/kandji-prod/edit",
        data={
            "csrf_token": client.csrf,  # type: ignore[attr-defined]
            "token": WRONG_TOKEN,
            "display_name": "Renamed",
            "poll_interval": "60",
            "retention_days": "730",
        },
    )
    assert refused.status_code == 400
    error = re.search(r'id="e-token">([^<]*)<', refused.text)
    assert error and html.unescape(error.group(1)).startswith(
        "Nothing was changed: The new token was not saved"
    )
    assert WRONG_TOKEN not in refused.text
    assert sources.get_source(runtime.state, "kandji-prod").display_name is None

    saved = client.post(
        "/sources/kandji-prod/edit",
        data={
            "csrf_token": client.csrf,  # type: ignore[attr-defined]
            "token": "",
            "display_name": "Kandji (production)",
            "poll_interval": "60",
            "retention_days": "730",
        },
    )
    assert saved.status_code == 200
    assert "Saved (display name)." in saved.text
    assert sources.get_source_token(runtime.state, "kandji-prod") == kandji.token
    listed = client.get("/sources")
    assert "Kandji (production)" in listed.text


def test_the_source_page_shows_its_permissions_and_what_uses_it(
    kandji: RunningSimulator, api: TestClient, client: TestClient, runtime: Runtime
) -> None:
    added(api, kandji)
    with_mapping(runtime)

    page = client.get("/sources/kandji-prod").text

    permissions = re.search(r'data-testid="permissions">(.*?)</dd>', page, re.S)
    used_by = re.search(r'data-testid="used-by">(.*?)</dd>', page, re.S)
    assert permissions and used_by
    assert "List audit events, Device list, Device details, List admins" in permissions.group(1)
    assert used_by.group(1) == "the audit log collection of source kandji-prod; mapping devices"


def test_registry_refusals_say_what_to_do_in_the_ui(
    kandji: RunningSimulator, api: TestClient, client: TestClient, runtime: Runtime
) -> None:
    added(api, kandji)
    with_mapping(runtime)

    refused = api.delete("/api/sources/kandji-prod").json()["detail"]
    removing = client.post("/sources/kandji-prod/remove", data={"csrf_token": client.csrf})
    alert = re.search(r'<p class="alert error" role="alert">([^<]*)</p>', removing.text)
    assert alert
    page = html.unescape(alert.group(1))
    missing = api.get("/api/sources/nope").json()["detail"]
    naming = client.get("/sources/new/kandji/connect", params={"name": "kandji-prod"})
    name_error = re.search(r'id="e-name">([^<]*)<', naming.text)
    assert name_error
    taken = html.unescape(name_error.group(1))

    assert refused.endswith("remove the mapping first on its page under Integrations.")
    assert page.endswith("remove the mapping first on its page under Integrations.")
    assert missing == "No source named nope; the Sources page lists the names."
    assert taken.endswith("or remove that source first from its page under Sources.")
    for said in (refused, page, missing, taken):
        assert "kandji-bridge" not in said and "`" not in said


def test_collect_a_period_again_from_the_source_page_restores_lost_events(
    kandji: RunningSimulator, api: TestClient, client: TestClient, runtime: Runtime
) -> None:
    """A period whose events went missing from the store (a damaged part moved aside) is
    collected again from the source's page: the missing events come back, none twice."""
    added(api, kandji)
    assert api.post("/api/sources/kandji-prod/poll").json()["error"] is None
    source = {"source": sources.get_source(runtime.state, "kandji-prod").id}

    def stored_events() -> tuple[int, int]:
        sql = (
            "SELECT count(), uniqExact(kandjiEventId) FROM kandji_logs "
            "WHERE sourceID = {source:String}"
        )
        [[rows, ids]] = runtime.store.query(sql, params=source).rows
        return int(rows), int(ids)

    stored = stored_events()
    # The day before the stored history ends: a resync may not start after that end.
    checkpoint = runtime.store.latest_checkpoint(source["source"])
    last_day = checkpoint.event_time.date() - timedelta(days=1)
    runtime.store.query(
        "ALTER TABLE kandji_logs DELETE WHERE sourceID = {source:String} "
        f"AND toDate(eventTime) = toDate('{last_day}') SETTINGS mutations_sync = 1",
        read_only=False,
        params=source,
    )
    after_loss = stored_events()
    assert after_loss[0] < stored[0]
    page = client.get("/sources/kandji-prod")
    assert 'data-testid="resync"' in page.text
    token = client.csrf  # type: ignore[attr-defined]

    done = client.post(
        "/sources/kandji-prod/resync",
        data={"csrf_token": token, "start": str(last_day), "end": str(last_day)},
    )

    assert done.status_code == 200, done.text
    text = html.unescape(done.text)
    assert f"Collected {last_day} to {last_day} again:" in text
    assert f"{stored[0] - after_loss[0]:,} new stored" in text
    restored = stored_events()
    assert restored == stored and restored[0] == restored[1]

    backwards = client.post(
        "/sources/kandji-prod/resync",
        data={"csrf_token": token, "start": "2026-03-02", "end": "2026-03-01"},
    )
    assert backwards.status_code == 400
    assert "first day is after its last" in html.unescape(backwards.text)


def test_collect_again_while_the_source_is_being_polled_says_so_in_the_page_words(
    kandji: RunningSimulator, api: TestClient, client: TestClient, runtime: Runtime
) -> None:
    """The form raced against a poll that holds the source's job (serve's scheduler, or a
    collection started on another machine): refused in words for the web page, nothing stored
    twice, the poll's lease left as it was."""
    added(api, kandji)
    assert api.post("/api/sources/kandji-prod/poll").json()["error"] is None
    info = sources.get_source(runtime.state, "kandji-prod")
    job = jobs.source_job(info.id)
    polling = leases.default_holder()  # a holder of this live process, like the scheduler
    assert leases.acquire(runtime.state, job, polling, ttl=120)
    [[before]] = runtime.store.query("SELECT count() FROM kandji_logs").rows

    refused = client.post(
        "/sources/kandji-prod/resync",
        data={"csrf_token": client.csrf, "start": "2020-01-01", "end": ""},  # type: ignore[attr-defined]
    )

    assert refused.status_code == 400
    text = html.unescape(refused.text)
    sentence = re.search(r"Source kandji-prod is being collected[^<]*", text)
    assert sentence is not None, text
    said = sentence.group(0)
    assert "is being collected right now" in said and said.endswith("free again within 120 s).")
    assert "kandji-bridge" not in said and "`" not in said and "logs sync" not in said
    assert leases.holders(runtime.state) == {job: polling}
    [[after]] = runtime.store.query("SELECT count() FROM kandji_logs").rows
    assert after == before

    leases.release(runtime.state, job, polling)
    done = client.post(
        "/sources/kandji-prod/resync",
        data={"csrf_token": client.csrf, "start": "2020-01-01", "end": ""},  # type: ignore[attr-defined]
    )
    assert done.status_code == 200 and f"{before:,} already stored" in html.unescape(done.text)
