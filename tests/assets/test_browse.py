"""The records table's queries on SQLite and PostgreSQL: search, typed sort, paging, status."""

import time
from datetime import UTC, datetime

import pytest

from kandji_bridge.assets import browse, collections, records
from kandji_bridge.assets.browse import InvalidBrowse
from kandji_bridge.assets.collections import CollectionInfo, parse_field_spec
from kandji_bridge.assets.convert import Value
from kandji_bridge.db import StateDB
from kandji_bridge.errors import NotFound

FIELDS = ("Serial:text:unique", "Name:text", "Disk GB:number", "Seen:datetime", "Tags:list",
          "Missing:boolean")  # fmt: skip


@pytest.fixture
def assets(state: StateDB) -> CollectionInfo:
    collection = collections.create_collection(
        state, "Assets", [parse_field_spec(spec) for spec in FIELDS]
    )
    rows: list[tuple[str, dict[str, Value]]] = [
        ("active", {"Serial": "S1", "Name": "banana", "Disk GB": 100, "Missing": False,
                    "Seen": "2025-01-02T10:00:00Z", "Tags": ["finance"]}),
        ("active", {"Serial": "S2", "Name": "Apple", "Disk GB": 9.5, "Missing": True,
                    "Seen": "2025-01-02T10:00:00.5Z"}),
        ("active", {"Serial": "S3", "Name": "cherry", "Disk GB": 20,
                    "Seen": "2024-12-31T23:59:59Z", "Tags": ["Loaner", "finance"]}),
        ("removed", {"Serial": "S4", "Name": "date 1", "Disk GB": 1000}),
        ("archived", {"Serial": "S5", "Name": "elder", "Disk GB": 5}),
        ("active", {"Serial": "S6", "Disk GB": 15}),  # no name
    ]  # fmt: skip
    write(state, collection, rows)
    return collection


def write(state: StateDB, collection: CollectionInfo, rows: list[tuple[str, dict]]) -> None:
    by_label = {field.label: field for field in collection.fields}
    now = datetime.now(UTC)
    writes = records.RecordWrites(collection, (), None, now)
    for status, values in rows:
        time.sleep(0.002)  # record ids hold the creation time to the millisecond
        data = {by_label[label].id: value for label, value in values.items()}
        writes.insert(records.new_record_id(), status, data)
    with state.session() as session:
        records.write_records(session, writes)


def serials(page: browse.RecordPage, collection: CollectionInfo) -> list[str]:
    serial = collection.field("Serial").id
    return [str(row.values[serial]) for row in page.rows]


def test_the_default_page_is_active_and_removed_records_in_creation_order(
    state: StateDB, assets: CollectionInfo
) -> None:
    page = browse.page_records(state, assets)
    assert serials(page, assets) == ["S1", "S2", "S3", "S4", "S6"]
    assert (page.total, page.page, page.pages) == (5, 1, 1)
    assert [row.status for row in page.rows] == ["active"] * 3 + ["removed", "active"]


@pytest.mark.parametrize(
    ("status", "expected"),
    [("active", ["S1", "S2", "S3", "S6"]), ("removed", ["S4"]), ("archived", ["S5"]),
     ("all", ["S1", "S2", "S3", "S4", "S5", "S6"])],
)  # fmt: skip
def test_the_status_filter(
    state: StateDB, assets: CollectionInfo, status: str, expected: list[str]
) -> None:
    page = browse.page_records(state, assets, status=status)
    assert serials(page, assets) == expected
    assert page.total == len(expected)


def test_numbers_sort_as_numbers_and_text_ignores_case(
    state: StateDB, assets: CollectionInfo
) -> None:
    by_disk = browse.page_records(state, assets, sort_field="disk gb", status="all")
    assert serials(by_disk, assets) == ["S5", "S2", "S6", "S3", "S1", "S4"]  # 5 < 9.5 < 15 < ...
    down = browse.page_records(state, assets, sort_field="Disk GB", descending=True, status="all")
    assert serials(down, assets) == ["S4", "S1", "S3", "S6", "S2", "S5"]
    by_name = browse.page_records(state, assets, sort_field="Name")
    # The record without a name counts as the smallest; then Apple, banana, cherry, date 1.
    assert serials(by_name, assets) == ["S6", "S2", "S1", "S3", "S4"]
    by_name_down = browse.page_records(state, assets, sort_field="Name", descending=True)
    assert serials(by_name_down, assets) == ["S4", "S3", "S1", "S2", "S6"]


def test_datetimes_sort_as_times(state: StateDB, assets: CollectionInfo) -> None:
    page = browse.page_records(state, assets, sort_field="Seen", status="active")
    # Records without a time first, then by time; S1 and S2 share the second, creation decides.
    assert serials(page, assets) == ["S6", "S3", "S1", "S2"]


def test_search_looks_in_values_any_case_and_not_in_field_ids(
    state: StateDB, assets: CollectionInfo
) -> None:
    assert serials(browse.page_records(state, assets, search="APPLE"), assets) == ["S2"]
    assert serials(browse.page_records(state, assets, search="loaner"), assets) == ["S3"]
    assert serials(browse.page_records(state, assets, search="9.5"), assets) == ["S2"]
    assert serials(browse.page_records(state, assets, search="true"), assets) == ["S2"]
    # Field ids are keys of the stored JSON: a search for one must not match every record.
    field_id = str(assets.field("Name").id)
    matched = browse.page_records(state, assets, search=f'"{field_id}"', status="all")
    assert matched.total == 0
    assert browse.page_records(state, assets, search="100%").total == 0
    assert browse.page_records(state, assets, search="s_").total == 0  # _ is not a wildcard
    finance = browse.page_records(state, assets, search="finance", sort_field="Name")
    assert serials(finance, assets) == ["S1", "S3"] and finance.total == 2


def test_paging_is_stable_and_a_page_past_the_end_is_the_last(
    state: StateDB, assets: CollectionInfo
) -> None:
    # Four records share 'same' as their name: creation order decides between them.
    write(state, assets, [("active", {"Serial": f"T{n}", "Name": "same"}) for n in range(4)])
    seen = []
    for number in (1, 2, 3, 4, 5):
        page = browse.page_records(state, assets, sort_field="Name", page=number, page_size=2)
        assert page.total == 9 and page.pages == 5 and page.page == number
        seen += serials(page, assets)
    assert seen == ["S6", "S2", "S1", "S3", "S4", "T0", "T1", "T2", "T3"]
    backwards = []
    for number in (1, 2, 3, 4, 5):
        page = browse.page_records(
            state, assets, sort_field="Name", descending=True, page=number, page_size=2
        )
        backwards += serials(page, assets)
    assert backwards == ["T3", "T2", "T1", "T0", "S4", "S3", "S1", "S2", "S6"]
    past = browse.page_records(state, assets, page=99, page_size=4)
    assert past.page == 3 and serials(past, assets) == ["T3"]


def test_bad_queries_say_what_to_change(state: StateDB, assets: CollectionInfo) -> None:
    with pytest.raises(InvalidBrowse, match=r"Cannot sort by 'Colour'.*'Serial'"):
        browse.page_records(state, assets, sort_field="Colour")
    with pytest.raises(InvalidBrowse, match="Unknown status 'gone'"):
        browse.page_records(state, assets, status="gone")
    with pytest.raises(InvalidBrowse, match="page size is 0"):
        browse.page_records(state, assets, page_size=0)
    with pytest.raises(InvalidBrowse, match="numbered from 1"):
        browse.page_records(state, assets, page=0)


def test_get_record_gives_values_by_label_and_refuses_a_record_of_another_collection(
    state: StateDB, assets: CollectionInfo
) -> None:
    first = browse.page_records(state, assets).rows[0]
    record = browse.get_record(state, assets, first.id)
    assert record.values["Serial"] == "S1" and record.values["Tags"] == ["finance"]
    assert record.status == "active" and record.history == []
    other = collections.create_collection(state, "Other", [parse_field_spec("X:text")])
    with pytest.raises(NotFound, match="Collection Other has no record"):
        browse.get_record(state, other, first.id)
