"""Collections through the REST API and the pages (httpx under TestClient), with bad input."""

import re

from fastapi.testclient import TestClient

from assets.test_browse import write
from kandji_bridge import source_registry as sources
from kandji_bridge.assets import collections
from kandji_bridge.inventory import mappings
from kandji_bridge.inventory.mappings import MappingSpec, Pair
from kandji_bridge.service.runtime import Runtime

ITAM = {
    "name": "ITAM",
    "fields": [
        {"label": "Serial", "type": "text", "unique": True},
        {"label": "Name", "type": "text"},
        {"label": "Disk GB", "type": "number"},
    ],
}


def test_create_list_and_show_a_collection_through_the_api(api: TestClient) -> None:
    assert api.get("/api/collections").json() == []
    created = api.post("/api/collections", json=ITAM)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "ITAM" and body["records"] == {} and body["mappings"] == []
    assert body["fields"][0] == {"label": "Serial", "type": "text", "unique": True}
    assert [c["name"] for c in api.get("/api/collections").json()] == ["ITAM"]
    assert api.get("/api/collections/ITAM").json()["fields"][2]["type"] == "number"
    empty = api.get("/api/collections/ITAM/records").json()
    assert empty == {"records": [], "total": 0, "page": 1, "pages": 1, "page_size": 50}


def test_patch_edits_and_delete_removes_a_collection_and_refuse_breaking_a_mapping(
    api: TestClient, runtime: Runtime
) -> None:
    assert api.post("/api/collections", json=ITAM).status_code == 201
    patched = api.patch(
        "/api/collections/ITAM",
        json={
            "rename": "Fleet",
            "add_fields": [{"label": "Room", "type": "text"}],
            "remove_fields": ["Disk GB"],
        },
    )
    assert patched.status_code == 200, patched.text
    assert [f["label"] for f in patched.json()["fields"]] == ["Serial", "Name", "Room"]
    # A mapping (saved without asking Kandji) now imports into it.
    sources.add_source(runtime.state, "sim", "https://acme.api.kandji.io", "t" * 36)
    mappings.create_mapping(
        runtime.state,
        MappingSpec("devices", "sim", "Fleet", Pair("serial_number", "Serial")),
    )
    before = api.get("/api/collections/Fleet").json()
    loosen = api.patch("/api/collections/Fleet", json={"not_unique": ["Serial"]})
    assert loosen.status_code == 400
    assert "Unique Identifier of mapping 'devices'" in loosen.json()["detail"]
    gone = api.delete("/api/collections/Fleet")
    assert gone.status_code == 400
    assert "is filled by mapping 'devices'" in gone.json()["detail"]
    assert api.get("/api/collections/Fleet").json() == before
    assert api.delete("/api/mappings/devices").status_code == 204
    assert api.delete("/api/collections/Fleet").status_code == 204
    assert api.get("/api/collections").json() == []


def test_bad_input_gets_one_clear_sentence(api: TestClient) -> None:
    assert api.post("/api/collections", json=ITAM).status_code == 201
    again = api.post("/api/collections", json=ITAM)
    assert again.status_code == 409
    assert "A collection named ITAM already exists" in again.json()["detail"]
    bad_type = api.post(
        "/api/collections", json={"name": "X", "fields": [{"label": "A", "type": "colour"}]}
    )
    assert bad_type.status_code == 400
    assert bad_type.json()["detail"] == (
        "The field 'A' has the type 'colour'; use one of text, number, boolean, date, "
        "datetime, list."
    )
    no_fields = api.post("/api/collections", json={"name": "X", "fields": []})
    assert no_fields.status_code == 400 and "has no fields" in no_fields.json()["detail"]
    sort = api.get("/api/collections/ITAM/records", params={"sort": "Colour"})
    assert sort.status_code == 400
    assert sort.json()["detail"].startswith("Cannot sort by 'Colour': Collection ITAM has no field")
    status = api.get("/api/collections/ITAM/records", params={"status": "gone"})
    assert status.status_code == 400 and "Unknown status 'gone'" in status.json()["detail"]
    size = api.get("/api/collections/ITAM/records", params={"page_size": 100000})
    assert size.status_code == 400 and "use 1 to 500" in size.json()["detail"]
    missing = api.get("/api/collections/Nope/records")
    assert missing.status_code == 404 and "No collection named Nope" in missing.json()["detail"]
    record = api.get("/api/collections/ITAM/records/not-a-record")
    assert record.status_code == 404 and "has no record" in record.json()["detail"]


def test_the_form_keeps_what_was_typed_and_shows_errors_beside_the_fields(
    client: TestClient, runtime: Runtime
) -> None:
    form = {
        "csrf_token": client.csrf,  # type: ignore[attr-defined]
        "name": "Laptops",
        "label": ["Serial", "serial", ""],
        "type": ["text", "number", "text"],
        "unique": ["0"],
    }
    refused = client.post("/collections/new", data=form)
    assert refused.status_code == 400
    assert "already used by field 1" in refused.text
    assert 'value="Laptops"' in refused.text and 'value="serial"' in refused.text
    assert re.search(r'name="unique" value="0"\s+checked', refused.text)
    form["label"] = ["Serial", "Model", ""]
    created = client.post("/collections/new", data=form)
    assert created.status_code == 303
    listing = client.get(created.headers["location"])
    assert "Created collection Laptops." in listing.text
    taken = client.post("/collections/new", data=form)
    assert taken.status_code == 400
    assert "A collection named Laptops already exists" in taken.text
    row = client.get("/collections/new/field-row", params={"index": 3})
    assert 'id="label-3"' in row.text and 'value="3"' in row.text


def test_export_links_give_csv_and_json(client: TestClient, api: TestClient) -> None:
    api.post("/api/collections", json=ITAM)
    csv = client.get("/collections/ITAM/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.content == b"\xef\xbb\xbfSerial,Name,Disk GB\r\n"
    assert client.get("/collections/ITAM/export", params={"format": "json"}).json() == []


def test_the_export_buttons_work_with_every_status_filter(
    client: TestClient, api: TestClient
) -> None:
    api.post("/api/collections", json=ITAM)
    for status in ("", "active", "removed", "archived", "all"):
        page = client.get("/collections/ITAM", params={"status": status} if status else {})
        links = re.findall(r'href="(/collections/ITAM/export\?[^"]*)"', page.text)
        assert len(links) == 2, status
        for link in links:
            export = client.get(link.replace("&amp;", "&"))
            assert export.status_code == 200, (status, link, export.text)
            assert export.headers["content-disposition"].startswith("attachment")


def test_an_export_holds_what_the_filtered_table_shows_in_its_order(
    runtime: Runtime, client: TestClient, api: TestClient
) -> None:
    """Search, status and sort of the records table go into its CSV and JSON links: the export
    is every page of what the table shows (more than one page of the export's own reads)."""
    api.post("/api/collections", json=ITAM)
    itam = collections.get_collection(runtime.state, "ITAM")
    rows = [
        ("active", {"Serial": f"M{n}", "Name": f"MacBook {n}", "Disk GB": n}) for n in range(510)
    ]
    rows += [("active", {"Serial": f"I{n}", "Name": f"iPad {n}", "Disk GB": n}) for n in range(5)]
    rows += [("removed", {"Serial": "R1", "Name": "MacBook gone", "Disk GB": 9999})]
    write(runtime.state, itam, rows)
    query = {"search": "macbook", "status": "active", "sort": "Disk GB", "desc": "1"}
    page = client.get("/collections/ITAM", params=query).text
    assert "of 510 records" in page
    links = dict(re.findall(r'id="export-(csv|json)" href="([^"]+)"', page))
    exported = client.get(links["json"].replace("&amp;", "&")).json()
    assert [r["Serial"] for r in exported] == [f"M{n}" for n in reversed(range(510))]
    table = client.get(links["csv"].replace("&amp;", "&")).content.decode("utf-8-sig")
    assert table.splitlines()[1:3] == ["M509,MacBook 509,509", "M508,MacBook 508,508"]
    assert len(table.splitlines()) == 511

    everything = client.get("/collections/ITAM/export", params={"format": "json"}).json()
    assert len(everything) == 516, "without filters, every active and removed record"
