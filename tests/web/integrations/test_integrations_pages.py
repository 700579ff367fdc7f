"""The Integrations pages with a signed-in browser-like client: bad input is shown at its field,
what was typed is kept (never the key), and nothing is saved."""

import html
import re

from fastapi.testclient import TestClient

from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.assets.collections import FieldSpec
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.inventory import mappings
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.simulator.server import RunningSimulator

from .test_integrations_api import itam, source_rows

WRONG_KEY = "11111111-2222-4333-8444-555555555555"


def form(client: TestClient, **fields: object) -> dict[str, object]:
    return {"csrf_token": client.csrf, **fields}  # type: ignore[attr-defined]


def error_at(page: str, name: str) -> str:
    found = re.search(rf'<small class="error[^"]*" id="e-{name}">([^<]*)</small>', page)
    assert found, f"no error shown at {name}"
    return html.unescape(found.group(1))


def mapping_form(client: TestClient, **overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "name": "Kandji Device Import",
        "source": "sim",
        "entity": "devices",
        "collection": "ITAM",
        "identifier_kandji": "serial_number",
        "identifier_field": "Serial",
        "kandji": ["device_name"],
        "field": ["Name"],
        "schedule_minutes": "30",
        "on_removed": "mark",
        "action": "save",
    }
    fields.update(overrides)
    return form(client, **fields)


def test_a_wrong_key_keeps_the_base_url_never_the_key_and_saves_nothing(
    home, allow_simulator: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    response = client.post(
        "/integrations/kandji",
        data=form(client, base_url=allow_simulator.base_url, api_key=WRONG_KEY),
    )
    assert response.status_code == 400
    assert "refused the API token" in error_at(response.text, "api_key")
    assert f'value="{allow_simulator.base_url}"' in response.text
    assert WRONG_KEY not in response.text
    assert "paste it again" in response.text
    assert 'data-testid="auth-check"' not in response.text
    assert source_rows(runtime) == []


def test_empty_fields_are_named_at_their_field(runtime: Runtime, client: TestClient) -> None:
    response = client.post("/integrations/kandji", data=form(client, base_url="", api_key=""))
    assert response.status_code == 400
    assert "Enter the Base URL" in error_at(response.text, "base_url")
    assert "API Token Management" in error_at(response.text, "api_key")


def test_the_web_app_url_is_turned_into_the_api_url(runtime: Runtime, client: TestClient) -> None:
    # Offline here: the derived API host does not answer, and the error names it.
    response = client.post(
        "/integrations/kandji",
        data=form(client, base_url="https://yourcompany.kandji.io", api_key=WRONG_KEY),
    )
    assert response.status_code == 400
    assert "yourcompany.api.kandji.io" in error_at(response.text, "base_url")
    assert 'value="https://yourcompany.kandji.io"' in response.text
    assert source_rows(runtime) == []


def test_a_successful_test_replaces_the_token_of_the_source_with_that_url(
    home, allow_simulator: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    sources.add_source(runtime.state, "logs", allow_simulator.base_url, "old-token")
    response = client.post(
        "/integrations/kandji",
        data=form(client, base_url=allow_simulator.base_url, api_key=allow_simulator.token),
    )
    assert response.status_code == 200
    assert 'data-testid="auth-check"' in response.text
    assert "Continue with mapping" in response.text
    assert allow_simulator.token not in response.text
    [only] = source_rows(runtime)
    assert only.name == "logs" and only.logs_enabled is True  # reused, still polled
    assert sources.get_source_token(runtime.state, "logs") == allow_simulator.token


def sim_and_itam(runtime: Runtime, simulator: RunningSimulator) -> None:
    itam(runtime)
    sources.add_source(runtime.state, "sim", simulator.base_url, simulator.token)


def test_an_identifier_into_a_field_not_marked_unique_is_shown_there_and_the_form_kept(
    home, allow_simulator: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    sim_and_itam(runtime, allow_simulator)
    data = mapping_form(client, identifier_field="Name", kandji=["device_name"], field=["Name"])
    response = client.post("/integrations/mappings", data=data)
    assert response.status_code == 400
    message = error_at(response.text, "identifier")
    assert "'Name'" in message and "'Serial', 'Device ID'" in message
    assert 'value="Kandji Device Import"' in response.text
    assert 'value="30"' in response.text
    assert re.search(r'<option value="mark"\s+selected', response.text)
    assert re.search(r'<option value="device_name"\s+selected', response.text)
    assert mappings.list_mappings(runtime.state) == []


def test_a_bad_row_is_shown_at_that_row(
    home, allow_simulator: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    sim_and_itam(runtime, allow_simulator)
    data = mapping_form(
        client,
        kandji=["device_name", "tags", "", "model"],
        field=["Name", "Serial", "", "Name"],
    )
    response = client.post("/integrations/mappings", data=data)
    assert response.status_code == 400
    found = re.findall(r'<small class="error row-error">([^<]*)</small>', response.text)
    errors = [html.unescape(error) for error in found]
    # Row 2 maps tags into the identifier's field; row 4 a second Kandji field into Name. The
    # blank row 3 is left out.
    assert len(errors) == 2, errors
    assert "'Serial' is mapped twice" in errors[0]
    assert "'Name' is already mapped from device_name" in errors[1]
    assert mappings.list_mappings(runtime.state) == []


def test_add_more_without_javascript_adds_a_row_and_keeps_the_form(
    home, allow_simulator: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    sim_and_itam(runtime, allow_simulator)
    response = client.post("/integrations/mappings", data=mapping_form(client, action="add"))
    assert response.status_code == 200
    assert response.text.count('data-testid="field-row"') == 2
    assert 'value="Kandji Device Import"' in response.text
    assert mappings.list_mappings(runtime.state) == []


def test_a_collection_without_unique_fields_says_how_to_fix_it(
    runtime: Runtime, client: TestClient
) -> None:
    collections.create_collection(runtime.state, "Plain", [FieldSpec("Name", FieldType.TEXT)])
    response = client.get(
        "/integrations/mapping-form/section", params={"collection": "Plain"},
        headers={"HX-Request": "true"},
    )  # fmt: skip
    assert response.status_code == 200
    assert "has no field marked unique" in response.text
    assert 'href="/collections/new"' in response.text
    assert "<option" in response.text and "No unique fields" in response.text


def test_the_hint_and_the_extra_row_fragments(runtime: Runtime, client: TestClient) -> None:
    itam(runtime)
    hint = client.get("/integrations/mapping-form/hint", params={"kandji": "device_id"})
    assert "Recommended unique identifier" in hint.text
    row = client.get("/integrations/mapping-form/row", params={"collection": "ITAM"})
    assert 'name="kandji"' in row.text and ">Model Identifier (text)<" in row.text


def test_the_mapping_page_syncs_inline_without_the_scheduler_and_removes(
    home, allow_simulator: RunningSimulator, runtime: Runtime, client: TestClient
) -> None:
    sim_and_itam(runtime, allow_simulator)
    response = client.post("/integrations/mappings", data=mapping_form(client))
    assert response.status_code == 303
    url = response.headers["location"]
    assert url == "/integrations/mappings/Kandji%20Device%20Import?done=created"
    page = client.get(url).text
    assert "Background jobs are not running" in page
    # What the connection's token allows, as checked when the mapping was saved.
    allowed = re.search(r'data-testid="token-permissions">([^<]*)<', page)
    assert allowed and allowed[1].startswith("token allows: ") and "Device list" in allowed[1]
    assert f"created {len(allow_simulator.devices)}" in page

    synced = client.post(url.split("?")[0] + "/sync", data=form(client))
    assert synced.headers["location"].endswith("?done=synced")
    page = client.get(synced.headers["location"]).text
    assert page.count('data-count="created"') == 2

    preview = client.post(url.split("?")[0] + "/preview", data=form(client))
    assert "Every record is up to date" in preview.text

    removed = client.post(url.split("?")[0] + "/remove", data=form(client))
    assert removed.headers["location"] == "/integrations/mappings"
    assert mappings.list_mappings(runtime.state) == []
    assert "No mappings yet" in client.get("/integrations/mappings").text
