"""The sources REST API and the Sources pages over HTTP, against the simulator (no scheduler)."""

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import parse_field_spec
from kandji_bridge.db.models import JobStatus
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, parse_pair
from kandji_bridge.jobs import leases
from kandji_bridge.logs.store import QuarantineEntry
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator


@pytest.fixture
def kandji(home: Path, allow_simulator: RunningSimulator) -> RunningSimulator:
    """The simulator, allowed as a Kandji URL. `home` comes first: it clears KANDJI_BRIDGE_*
    from the environment, so it must run before allow_simulator sets the allowed hosts, and the
    runtime (which reads them) after both."""
    return allow_simulator


NO_AUDIT_TOKEN = "sim-token-without-audit-permission"
WRONG_TOKEN = "sim-token-that-kandji-does-not-know"


def new_source(simulator: RunningSimulator, **changes: object) -> dict[str, object]:
    return {
        "name": "kandji-prod",
        "api_url": simulator.base_url,
        "token": simulator.token,
    } | changes


def assert_no_token(text: str, *tokens: str) -> None:
    for token in tokens:
        assert token not in text


def test_verify_lists_every_check(kandji: RunningSimulator, api: TestClient) -> None:
    response = api.post(
        "/api/sources/verify",
        json={"url": kandji.base_url, "token": kandji.token},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True and body["can_collect_logs"] is True, body
    assert [c["name"] for c in body["checks"]] == [
        "URL",
        "token",
        "List audit events",
        "Device list",
        "Device details",
        "List admins",
    ]
    assert all(c["ok"] for c in body["checks"])
    assert [c["required"] for c in body["checks"]] == [True, True, True, False, False, False]
    assert [c["optional"] for c in body["checks"]] == [False] * 5 + [True]
    assert_no_token(response.text, kandji.token)


def test_verify_explains_the_missing_audit_permission(
    kandji: RunningSimulator, api: TestClient
) -> None:
    kandji.state.set_token(NO_AUDIT_TOKEN, {"devices", "details"})
    response = api.post(
        "/api/sources/verify", json={"url": kandji.base_url, "token": NO_AUDIT_TOKEN}
    )
    body = response.json()
    assert body["ok"] is False and body["can_collect_logs"] is False
    audit = next(c for c in body["checks"] if c["name"] == "List audit events")
    assert audit["ok"] is False
    assert body["problem"].startswith("Kandji tokens have no permissions by default.")
    assert "Settings → Access" in body["problem"]
    assert_no_token(response.text, NO_AUDIT_TOKEN)


def test_add_list_get_and_remove_a_source(kandji: RunningSimulator, api: TestClient) -> None:
    created = api.post("/api/sources", json=new_source(kandji, poll_interval=30, retention_days=90))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["source"]["name"] == "kandji-prod"
    assert body["source"]["api_url"] == kandji.base_url
    assert body["source"]["status"] == "never polled"
    assert body["verify"]["ok"] is True
    assert "Poll now" in body["message"], "without a scheduler the message says how to poll"
    assert_no_token(created.text, kandji.token)

    listed = api.get("/api/sources")
    assert [s["name"] for s in listed.json()] == ["kandji-prod"]
    one = api.get("/api/sources/kandji-prod").json()
    assert (one["poll_interval"], one["retention_days"]) == (30, 90)
    assert (one["events_ingested"], one["quarantined_events"]) == (0, 0)
    assert one["lag_seconds"] is None and one["last_poll_at"] is None
    assert_no_token(listed.text + str(one), kandji.token)

    assert api.delete("/api/sources/kandji-prod").status_code == 204
    assert api.get("/api/sources").json() == []
    missing = api.get("/api/sources/kandji-prod")
    assert missing.status_code == 404
    assert "No source named kandji-prod" in missing.json()["detail"]


def test_bad_input_is_refused_with_a_sentence_per_field(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    cases = [
        ({"name": ""}, "name", "The source name is empty"),
        ({"name": "a/b"}, "name", "The source name contains '/'"),
        ({"api_url": "not a url"}, "api_url", "contains spaces"),
        (
            {"api_url": "https://evil.example.com"},
            "api_url",
            "evil.example.com is not a Kandji host",
        ),
        ({"token": "  "}, "token", "No API token was given"),
        ({"poll_interval": 0}, "poll_interval", "The poll interval must be a whole number"),
        ({"retention_days": 5000}, "retention_days", "The retention must be a whole number"),
    ]
    for change, field, sentence in cases:
        response = api.post("/api/sources", json=new_source(kandji, **change))
        assert response.status_code == 400, (change, response.text)
        assert sentence in response.json()["errors"][field], response.json()
        assert sentence in response.json()["detail"]
    missing = api.post("/api/sources", json={"name": "x", "token": "secret-token-value"})
    assert missing.status_code == 422
    assert "api_url: Field required" in missing.json()["detail"]
    assert "secret-token-value" not in missing.text
    assert sources.list_sources(runtime.state) == []


def test_a_failed_verify_saves_nothing(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    kandji.state.set_token(NO_AUDIT_TOKEN, {"devices", "details"})
    wrong = api.post("/api/sources", json=new_source(kandji, token=WRONG_TOKEN))
    assert wrong.status_code == 400
    assert wrong.json()["detail"].startswith("Source kandji-prod was not saved: Kandji at")
    assert "refused the API token (401)" in wrong.json()["detail"]

    lacking = api.post("/api/sources", json=new_source(kandji, token=NO_AUDIT_TOKEN))
    assert lacking.status_code == 400
    detail = lacking.json()["detail"]
    assert detail.startswith(
        "Source kandji-prod was not saved: Kandji tokens have no permissions by default. "
        "You must explicitly grant List audit events"
    )
    assert lacking.json()["verify"]["checks"][2]["ok"] is False
    assert_no_token(wrong.text + lacking.text, WRONG_TOKEN, NO_AUDIT_TOKEN)
    assert sources.list_sources(runtime.state) == []


def test_a_source_without_device_permissions_is_saved_for_logs(
    kandji: RunningSimulator, api: TestClient
) -> None:
    kandji.state.set_token("audit-only-token", {"audit"})
    response = api.post("/api/sources", json=new_source(kandji, token="audit-only-token"))
    assert response.status_code == 201
    checks = {c["name"]: c["ok"] for c in response.json()["verify"]["checks"]}
    assert checks["List audit events"] is True and checks["Device list"] is False


def test_the_web_app_url_is_accepted_and_the_api_url_used_is_said(api: TestClient) -> None:
    response = api.post(
        "/api/sources",
        json={
            "name": "acme",
            "api_url": "https://acme.kandji.io",
            "token": "t0ken",
            "verify": False,
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["source"]["api_url"] == "https://acme.api.kandji.io"
    assert body["api_url_note"] == (
        "Using the API URL https://acme.api.kandji.io for the web-app URL https://acme.kandji.io."
    )
    assert body["verify"] is None


def test_a_duplicate_name_is_refused(kandji: RunningSimulator, api: TestClient) -> None:
    assert api.post("/api/sources", json=new_source(kandji)).status_code == 201
    again = api.post("/api/sources", json=new_source(kandji))
    assert again.status_code == 400
    assert "A source named kandji-prod already exists" in again.json()["errors"]["name"]


def test_poll_now_without_a_scheduler_polls_and_the_status_shows_it(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    assert api.post("/api/sources", json=new_source(kandji)).status_code == 201
    polled = api.post("/api/sources/kandji-prod/poll")
    assert polled.json() == {"queued": False, "error": None}
    one = api.get("/api/sources/kandji-prod").json()
    assert one["status"] == "ok"
    assert one["events_ingested"] == len(kandji.state.all_events())
    assert one["lag_basis"] == "last successful poll"
    assert one["lag_seconds"] is not None and one["last_error"] is None


def test_poll_now_waits_while_another_process_collects_the_source(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    assert api.post("/api/sources", json=new_source(kandji)).status_code == 201
    source = sources.get_source(runtime.state, "kandji-prod")
    # A live process of this host (this one, under another holder name) holds the source's job.
    assert leases.acquire(runtime.state, f"source:{source.id}", "logs-sync:1:cafe", ttl=60)
    polled = api.post("/api/sources/kandji-prod/poll").json()
    assert polled["queued"] is False
    assert polled["error"] is not None and "try again when it is done" in polled["error"]
    assert api.get("/api/sources/kandji-prod").json()["events_ingested"] == 0


def test_a_failing_source_shows_its_last_error_in_full(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime, client: TestClient
) -> None:
    kandji.state.set_token("soon-revoked-token", {"audit", "devices", "details"})
    body = new_source(kandji, token="soon-revoked-token")
    assert api.post("/api/sources", json=body).status_code == 201
    kandji.state.revoke_permission("soon-revoked-token", "audit")
    polled = api.post("/api/sources/kandji-prod/poll").json()
    assert 'lacks the "List audit events" permission (403)' in polled["error"]
    one = api.get("/api/sources/kandji-prod").json()
    assert one["status"] == "failing"
    assert one["last_error"] == polled["error"]
    page = client.get("/sources")
    assert "failing" in page.text
    assert "lacks the &#34;List audit events&#34; permission (403)" in page.text
    assert_no_token(page.text, "soon-revoked-token")


def test_lag_counts_from_the_newest_event_when_no_poll_succeeded(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime
) -> None:
    assert api.post("/api/sources", json=new_source(kandji)).status_code == 201
    info = sources.get_source(runtime.state, "kandji-prod")
    api.post("/api/sources/kandji-prod/poll")
    with runtime.state.session() as session:  # as if only `logs sync` had collected it
        session.query(JobStatus).delete()
    one = api.get("/api/sources/kandji-prod").json()
    assert one["status"] == "never polled"
    assert one["lag_basis"] == "newest stored event"
    assert one["events_ingested"] > 0
    assert info.id == one["id"]


def test_a_source_a_mapping_uses_cannot_be_removed(
    kandji: RunningSimulator, api: TestClient, runtime: Runtime, client: TestClient
) -> None:
    assert api.post("/api/sources", json=new_source(kandji)).status_code == 201
    collections.create_collection(
        runtime.state, "ITAM", [parse_field_spec("Device ID:text:unique")]
    )
    mappings.create_mapping(
        runtime.state,
        MappingSpec("devices", "kandji-prod", "ITAM", parse_pair("device_id=Device ID")),
    )
    refused = api.delete("/api/sources/kandji-prod")
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith(
        "Source kandji-prod is the Kandji connection of mapping devices; remove the mapping first"
    )
    page = client.post("/sources/kandji-prod/remove", data={"csrf_token": client.csrf})
    assert page.status_code == 400
    assert "is the Kandji connection of mapping devices" in page.text
    assert api.get("/api/sources/kandji-prod").status_code == 200


def test_the_api_is_in_the_docs(api: TestClient) -> None:
    paths = api.get("/api/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/sources"])
    assert {"get", "delete"} <= set(paths["/api/sources/{name}"])
    assert "post" in paths["/api/sources/verify"]


# -- The pages over HTTP (no JavaScript) --------------------------------------------------------


def test_the_flow_works_without_javascript(
    kandji: RunningSimulator, client: TestClient, runtime: Runtime
) -> None:
    empty = client.get("/sources")
    assert "No sources yet" in empty.text and 'href="/sources/new"' in empty.text
    assert "Kandji" in client.get("/sources/new").text
    assert "Connect Source" in client.get("/sources/new/kandji").text
    bad_name = client.get("/sources/new/kandji/connect", params={"name": "bad/name"})
    assert bad_name.status_code == 400 and "contains &#39;/&#39;" in bad_name.text
    connect = client.get("/sources/new/kandji/connect", params={"name": "kandji-prod"})
    assert 'value="kandji-prod"' in connect.text and 'type="password"' in connect.text
    form = {
        "csrf_token": client.csrf,
        "name": "kandji-prod",
        "api_url": kandji.base_url,
        "token": kandji.token,
        "poll_interval": "60",
        "retention_days": "730",
    }
    verified = client.post("/sources/verify", data=form)
    assert verified.status_code == 200
    assert verified.text.count('class="check-ok"') == 6  # List admins (optional) too
    assert "Paste the API token again" in verified.text
    assert_no_token(verified.text, kandji.token)
    partial = client.post("/sources/verify", data=form, headers={"HX-Request": "true"})
    assert "<html" not in partial.text and partial.text.count('class="check-ok"') == 6

    bad = client.post("/sources", data=form | {"poll_interval": "soon", "retention_days": "0"})
    assert bad.status_code == 400
    assert "The poll interval must be a whole number of seconds" in bad.text
    assert "The retention must be a whole number of days from 1 to 3650" in bad.text
    assert 'value="soon"' in bad.text and f'value="{kandji.base_url}"' in bad.text
    assert_no_token(bad.text, kandji.token)
    assert sources.list_sources(runtime.state) == []

    saved = client.post("/sources", data=form)
    assert saved.status_code == 303
    assert saved.headers["location"] == "/sources?added=kandji-prod"
    listing = client.get(saved.headers["location"])
    assert "Source kandji-prod was added" in listing.text
    assert re.search(r'data-testid="status">never polled<', listing.text)

    polled = client.post("/sources/kandji-prod/poll", data={"csrf_token": client.csrf})
    assert polled.status_code == 303
    detail = client.get(polled.headers["location"])
    assert "Polled" in detail.text and re.search(r'data-testid="status">ok<', detail.text)
    assert "No quarantined events" in detail.text
    assert_no_token(detail.text, kandji.token)


def test_the_source_page_shows_quarantined_events_and_removes_after_confirming(
    kandji: RunningSimulator, api: TestClient, client: TestClient, runtime: Runtime
) -> None:
    assert api.post("/api/sources", json=new_source(kandji)).status_code == 201
    info = sources.get_source(runtime.state, "kandji-prod")
    runtime.store.insert_quarantine(
        [QuarantineEntry(info.id, "occurred_at is not a time: 'yesterday'", '{"id": "E1"}', "E1")]
    )
    page = client.get("/sources/kandji-prod")
    assert "occurred_at is not a time" in page.text
    assert re.search(r'data-testid="quarantined">1<', page.text)
    confirm = client.get("/sources/kandji-prod/remove")
    assert "Remove source kandji-prod?" in confirm.text
    removed = client.post("/sources/kandji-prod/remove", data={"csrf_token": client.csrf})
    assert removed.headers["location"] == "/sources?removed=kandji-prod"
    assert "Source kandji-prod was removed" in client.get(removed.headers["location"]).text


def test_a_device_import_only_connection_is_listed_as_not_polled(
    api: TestClient, client: TestClient, runtime: Runtime
) -> None:
    sources.add_source(
        runtime.state, "devices-only", "https://acme.api.kandji.io", "t0ken", logs_enabled=False
    )
    (listed,) = api.get("/api/sources").json()
    assert (listed["status"], listed["logs_enabled"]) == ("not polled", False)
    page = client.get("/sources/devices-only")
    assert "imports devices only" in page.text
