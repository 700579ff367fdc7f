"""Every 404 and error a browser meets is an HTML page in the product's layout with a way back;
under /api/ the same failures stay JSON."""

import pytest
from fastapi.testclient import TestClient

HTML = {"Accept": "text/html,application/xhtml+xml"}

MISSING = [
    "/collections/nope/records/00000000-0000-0000-0000-000000000000",  # a missing record
    "/collections/nope",  # a missing collection
    "/integrations/mappings/nope",  # a missing mapping
    "/sources/nope",  # a missing source
    "/logs/events/nope",  # a missing event
    "/no/such/page",  # an unknown path
    "/sources/nope/nothing-here",
]


@pytest.mark.parametrize("path", MISSING)
def test_a_missing_page_is_html_in_the_layout_with_a_way_back(
    client: TestClient, path: str
) -> None:
    page = client.get(path, headers=HTML)
    assert page.status_code == 404, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert '<header class="topbar">' in page.text, "the page lost the product's menu"
    assert '<a href="/">Back to kandji-bridge</a>' in page.text
    assert "<h1>Not found</h1>" in page.text


def test_an_unknown_path_signed_out_is_an_html_page_with_a_way_to_sign_in(
    anonymous: TestClient,
) -> None:
    page = anonymous.get("/no/such/page", headers=HTML)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text and 'href="/"' in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/sources/nope",
        "/api/mappings/nope",
        "/api/collections/nope",
        "/api/no/such/thing",
    ],
)
def test_the_same_under_the_api_stays_json(client: TestClient, path: str) -> None:
    answer = client.get(path, headers=HTML)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("application/json")
    assert isinstance(answer.json()["detail"], str)


def test_a_wrong_method_in_the_browser_is_an_html_page(client: TestClient) -> None:
    page = client.put("/sources", headers=HTML)
    assert page.status_code == 405
    assert page.headers["content-type"].startswith("text/html")
    assert '<header class="topbar">' in page.text


def test_a_wrong_method_under_the_api_names_every_allowed_method(client: TestClient) -> None:
    answer = client.put("/api/sources")
    assert answer.status_code == 405 and answer.headers["content-type"] == "application/json"
    assert answer.headers["allow"] == "GET, POST"
