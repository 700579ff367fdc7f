"""Kandji's response bodies, read and checked: audit pages (with each event's raw JSON), devices.

A body that is not complete JSON raises BadJSON (the simulator and real networks cut bodies short,
so another try may succeed); complete JSON of the wrong shape raises BadShape (it will not change).
"""

import json
import re
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson


class BadJSON(Exception):
    """The body is not complete, valid JSON."""


class BadShape(Exception):
    """Valid JSON, but not what the endpoint returns; str() says what is wrong."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    data: dict[str, Any]  # the event, parsed
    raw: str  # the event's JSON text exactly as Kandji sent it (key order, spacing, escapes)

    @property
    def id(self) -> str:
        return self.data["id"]


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    cursor: str | None  # the cursor that fetched this page (None: the first page)
    next_cursor: str | None  # None: no further page now


_decoder = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def parse_audit_page(body: bytes) -> tuple[list[AuditEvent], str | None]:
    """The events of an audit page and the cursor of the next page.

    One pass of the standard library's C scanner over the page gives both each event's parsed
    value and where its text starts and ends, so `raw` is a slice of the body, not a re-encoding.
    """
    text = _text(body)
    try:
        fields, results = _split_object(text)
    except json.JSONDecodeError as exc:
        raise BadJSON(str(exc)) from None
    except RecursionError:
        raise BadShape("nested too deeply") from None
    if results is None:
        raise BadShape('no "results" list')
    events = []
    for number, (value, raw) in enumerate(results, 1):
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            raise BadShape(f"result {number} is not an event with an id")
        events.append(AuditEvent(value, raw))
    return events, _next_cursor(fields.get("next"))


def parse_device_list(body: bytes) -> tuple[list[dict[str, Any]], bool]:
    """(devices, whether Kandji answered with a single device object instead of a list)."""
    value = _loads(body)
    single = isinstance(value, dict)
    devices = [value] if single else value
    if not isinstance(devices, list):
        raise BadShape("not a list of devices")
    for number, device in enumerate(devices, 1):
        if not isinstance(device, dict) or not device.get("device_id"):
            raise BadShape(f"item {number} is not a device with a device_id")
    return devices, single


def parse_device_details(body: bytes) -> dict[str, Any]:
    value = _loads(body)
    if not isinstance(value, dict):
        raise BadShape("not a device details object")
    return value


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise BadJSON("not UTF-8 text") from None


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadJSON(str(exc)) from None


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _expect(text: str, index: int, char: str) -> int:
    if not text.startswith(char, index):
        raise json.JSONDecodeError(f"Expecting {char!r}", text, index)
    return index + 1


def _split_object(text: str) -> tuple[dict[str, Any], list[tuple[Any, str]] | None]:
    """The top-level object's fields, and its "results" array as (value, raw text) pairs."""
    index = _skip(text, 0)
    if not text.startswith("{", index):
        _decoder.decode(text)  # raises JSONDecodeError if it is not JSON at all
        raise BadShape("not a JSON object")
    fields: dict[str, Any] = {}
    results: list[tuple[Any, str]] | None = None
    index = _skip(text, index + 1)
    if text.startswith("}", index):
        index += 1
    else:
        while True:
            index = _expect(text, index, '"')
            key, index = scanstring(text, index)
            index = _skip(text, _expect(text, _skip(text, index), ":"))
            if key == "results" and text.startswith("[", index):
                results, index = _split_array(text, index)
            else:
                fields[key], index = _decoder.raw_decode(text, index)
                if key == "results":
                    results = None  # a later "results" wins, as in any JSON parser
            index = _skip(text, index)
            if not text.startswith(",", index):
                index = _expect(text, index, "}")
                break
            index = _skip(text, index + 1)
    if _skip(text, index) != len(text):
        raise json.JSONDecodeError("Extra data", text, index)
    return fields, results


def _split_array(text: str, index: int) -> tuple[list[tuple[Any, str]], int]:
    items: list[tuple[Any, str]] = []
    index = _skip(text, index + 1)
    if text.startswith("]", index):
        return items, index + 1
    while True:
        value, end = _decoder.raw_decode(text, index)
        items.append((value, text[index:end]))
        index = _skip(text, end)
        if not text.startswith(",", index):
            return items, _expect(text, index, "]")
        index = _skip(text, index + 1)


def _next_cursor(next_url: object) -> str | None:
    """The cursor in a `next` URL. Only the cursor is used: the URL's host is never followed."""
    if next_url is None:
        return None
    if not isinstance(next_url, str):
        raise BadShape('"next" is not a URL')
    cursor = parse_qs(urlsplit(next_url).query).get("cursor", [""])[0]
    if not cursor:
        raise BadShape('the "next" URL has no cursor')
    return cursor
