"""Reading Kandji's bodies: each audit event's raw JSON exactly as sent, and shape checks."""

import json
from pathlib import Path

import pytest

from kandji_bridge.kandji.payloads import (
    BadJSON,
    BadShape,
    Unreadable,
    parse_audit_page,
    parse_device_details,
    parse_device_list,
)

DATA = Path(__file__).parent / "data"
# Kandji's example from the Postman collection: tabs and spaces mixed, "results" before "next".
POSTMAN_AUDIT = (DATA / "postman_audit_events.json").read_bytes()


def _page(*raw_events: str, next_url: str | None = None, space: str = "") -> bytes:
    next_json = json.dumps(next_url)
    results = f",{space}".join(raw_events)
    body = f'{{"next":{space}{next_json},"previous":null,"results":[{space}{results}{space}]}}'
    return body.encode()


def test_postman_example_events_are_sliced_byte_for_byte() -> None:
    events, next_cursor = parse_audit_page(POSTMAN_AUDIT)
    expected = json.loads(POSTMAN_AUDIT)["results"]
    assert [event.data for event in events] == expected
    assert len(events) == 10
    for event in events:
        raw = event.raw.encode()
        assert raw in POSTMAN_AUDIT  # a slice of the body: tabs, key order and spacing kept
        assert raw.startswith(b"{") and raw.endswith(b"}")
        assert json.loads(event.raw) == event.data
    assert events[0].id == "01JNGZW47KZKPXE1JWCFE4PHDW"
    assert '\n\t\t\t"action": "update",\n' in events[0].raw
    # Each raw event is exactly the text between the array's separators.
    body = POSTMAN_AUDIT.decode()
    start = body.index("[") + 1
    for event in events:
        position = body.index(event.raw, start)
        assert body[start:position].strip(" \t\r\n,") == ""
        start = position + len(event.raw)
    assert next_cursor == "PmR0OjIwMjUtMDMtMTcgMjI6Mjk6MjUuMzAxMDkyKzAwOjAw"


def test_raw_keeps_unicode_escapes_key_order_and_number_spelling() -> None:
    raw_events = [
        '{"id":"01A","z":1,"a":2,"name":"Zoë\'s Mac","emoji":"😀"}',
        '{ "id" : "01B" , "name" : "caf\\u00e9 \\ud83d\\ude00 \\"quoted\\" \\\\ \\/ \\n" }',
        '{"id":"01C","n":1.50,"e":1E3,"neg":-0,"nested":{"b":[1, 2,{"c":null}],"a":true}}',
        '{"id":"01D","new_state":{},"metadata":{"ip_address":"2001:db8::1"},"dup":1,"dup":2}',
    ]
    events, next_cursor = parse_audit_page(_page(*raw_events, space="\r\n\t "))
    assert [event.raw for event in events] == raw_events
    assert events[0].data["name"] == "Zoë's Mac"
    assert events[1].data["name"] == 'café 😀 "quoted" \\ / \n'
    assert list(events[0].data) == ["id", "z", "a", "name", "emoji"]
    assert events[2].data["n"] == 1.5
    assert events[3].data["dup"] == 2  # like any JSON parser; raw still has both
    assert next_cursor is None


def test_empty_pages_and_any_key_order() -> None:
    assert parse_audit_page(b'{"results":[]}') == ([], None)
    assert parse_audit_page(b' { "results" : [ ] , "next" : null } ') == ([], None)
    events, cursor = parse_audit_page(
        b'{"results":[{"id":"x"}],"extra":{"a":[1,2]},'
        b'"next":"https://evil.example/api/v1/audit/events?limit=1&cursor=abc%3D%3D"}'
    )
    assert [e.raw for e in events] == ['{"id":"x"}']
    assert cursor == "abc=="  # only the cursor is taken from `next`, never its host


def test_a_byte_order_mark_is_ignored() -> None:
    events, _ = parse_audit_page(b"\xef\xbb\xbf" + _page('{"id":"01A"}'))
    assert events[0].raw == '{"id":"01A"}'


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"{",
        b'{"results":[{"id":"01A"}',
        b'{"results":[{"id":"01A"},{"id":"01B"',
        b'{"results":[{"id":"01A"}],"next":"https://x/?cursor=a',
        POSTMAN_AUDIT[: len(POSTMAN_AUDIT) // 2],
        POSTMAN_AUDIT[:-1],
        b'{"results":[{"id":"01A"}]} trailing',
        b'{"results":[{"id":"01A"},]}',
        b"{'results':[]}",
        b'{"results":[{"id":"caf\xc3',  # cut inside a UTF-8 sequence
        b"\xff\xfe{}",
        b"<html><body>Bad gateway</body></html>",
    ],
)
def test_cut_or_invalid_json_is_bad_json(body: bytes) -> None:
    with pytest.raises(BadJSON):
        parse_audit_page(body)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[]", "not a JSON object"),
        (b'"results"', "not a JSON object"),
        (b"{}", 'no "results" list'),
        (b'{"detail":"Not found."}', 'no "results" list'),
        (b'{"results":null}', 'no "results" list'),
        (b'{"results":{"id":"01A"}}', 'no "results" list'),
        (b'{"results":[{"id":"01A"}],"results":"x"}', 'no "results" list'),
        (b'{"results":[],"next":7}', '"next" is not a URL'),
        (b'{"results":[],"next":"https://x/api/v1/audit/events?limit=5"}', "no cursor"),
        (b'{"results":[],"next":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b'{"results":[],"count":' + b"9" * 5_000 + b"}", "Exceeds the limit"),
    ],
)
def test_valid_json_of_the_wrong_shape_is_bad_shape(body: bytes, problem: str) -> None:
    with pytest.raises(BadShape, match=problem):
        parse_audit_page(body)


def test_elements_that_are_not_events_are_handed_over_not_refused() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    raws = [
        "1",
        '{"action":"x"}',
        '{"id":""}',
        '{"id":7}',
        "null",
        f'{{"id":"01DEEP","new_state":{deep}}}',
        '{"id":"01LONG","n":' + "9" * 5_000 + "}",
        "9" * 5_000,
        '{"id":"01CTRL","action":"a\x01b","s":"]}"}',
        '{"id":"01OK"}',
    ]
    events, _ = parse_audit_page(_page(*raws, space=" "))
    assert [event.raw for event in events] == raws
    assert [event.id for event in events] == ["", "", "", "", "", "", "", "", "", "01OK"]
    assert [e.data for e in events[:5]] == [
        1,
        {"action": "x"},
        {"id": ""},
        {"id": 7},
        None,
    ]
    unreadable = [event.data for event in events[5:9]]
    assert all(isinstance(data, Unreadable) for data in unreadable)
    assert "nested too deeply" in unreadable[0].reason
    assert "Exceeds the limit (4300 digits)" in unreadable[1].reason
    assert "Exceeds the limit (4300 digits)" in unreadable[2].reason
    assert "is not valid JSON (Invalid control character" in unreadable[3].reason
    assert events[9].data == {"id": "01OK"}


def test_bytes_that_are_not_utf8_set_their_event_aside_and_are_shown() -> None:
    body = _page('{"id":"01A"}', '{"id":"01B","action":"NOPE"}', '{"id":"01C"}')
    events, _ = parse_audit_page(body.replace(b"NOPE", b"caf\xc3\x28"))
    assert [event.data for event in (events[0], events[2])] == [{"id": "01A"}, {"id": "01C"}]
    assert isinstance(events[1].data, Unreadable)
    assert "not valid UTF-8" in events[1].data.reason
    assert events[1].raw == '{"id":"01B","action":"caf\\xc3("}'
    # Outside every event (here in `next`), they make the page unreadable, as before.
    with pytest.raises(BadJSON, match="not UTF-8"):
        parse_audit_page(_page('{"id":"01A"}', next_url="NOPE").replace(b"NOPE", b"\xff"))


@pytest.mark.parametrize(
    "results",
    [
        b'[{"id":"01A"},{"id":"01B",]',  # invalid JSON whose brackets do not close
        b'[{"id":"01A"},{"id":"01B","x":[}]',  # brackets that do not match
        b'[{"id":"01A"},nul]',
        b'[{"id":"01A"},{"id":"01B"',  # cut short
    ],
)
def test_an_element_that_does_not_close_is_the_pages_error(results: bytes) -> None:
    with pytest.raises(BadJSON):
        parse_audit_page(b'{"next":null,"results":' + results + b"}")


def test_device_lists_and_the_single_object_quirk() -> None:
    devices, single = parse_device_list((DATA / "postman_devices.json").read_bytes())
    assert not single
    assert len(devices) == 2
    assert all(device["device_id"] for device in devices)
    # Filtering by serial number answered one object, not a list, in Kandji's own example.
    devices, single = parse_device_list((DATA / "postman_device_single.json").read_bytes())
    assert single
    assert devices[0]["serial_number"] == "FVHHFKF7Q6L4"
    assert parse_device_list(b"[]") == ([], False)


@pytest.mark.parametrize(
    ("body", "error", "problem"),
    [
        (b"[", BadJSON, ""),
        (b'[{"device_id":"a"},', BadJSON, ""),
        (b"not json", BadJSON, ""),
        (b'{"count":1,"results":[]}', BadShape, "item 1 is not a device"),
        (b'"devices"', BadShape, "not a list of devices"),
        (b"null", BadShape, "not a list of devices"),
        (b'[{"device_id":"a"},1]', BadShape, "item 2 is not a device"),
        (b'[{"device_name":"a"}]', BadShape, "item 1 is not a device with a device_id"),
    ],
)
def test_device_list_errors(body: bytes, error: type[Exception], problem: str) -> None:
    with pytest.raises(error, match=problem or None):
        parse_device_list(body)


def test_device_details() -> None:
    assert parse_device_details(b'{"general":{"device_id":"a"}}') == {"general": {"device_id": "a"}}
    with pytest.raises(BadShape):
        parse_device_details(b"[]")
    with pytest.raises(BadJSON):
        parse_device_details(b'{"general":')
