"""Kandji's response bodies, read and checked: audit pages (with each event's raw JSON), devices,
admins.

A body that is not complete JSON raises BadJSON (the simulator and real networks cut bodies short,
so another try may succeed); complete JSON of the wrong shape raises BadShape (it will not change).
Both are errors of the whole page, so they are kept to the page's envelope: one bad element of
`results` (not an object, no id, nested too deeply, not UTF-8, ...) is handed over like any other
event, for the collector to quarantine, and never fails the events around it.
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
class Unreadable:
    """An element of `results` whose text could be cut out of the page but not read as JSON."""

    reason: str  # what is wrong with it, as the quarantine shows it


@dataclass(frozen=True, slots=True)
class AuditEvent:
    # The element, parsed: an event object when Kandji behaves, else whatever JSON value it sent,
    # or Unreadable.
    data: Any
    raw: str  # the element's JSON text exactly as Kandji sent it (key order, spacing, escapes)

    @property
    def id(self) -> str:
        """The event's id; "" when the element has none that is a string."""
        value = self.data.get("id") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    cursor: str | None  # the cursor that fetched this page (None: the first page)
    next_cursor: str | None  # None: no further page now


_decoder = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# What "surrogateescape" decodes the bytes of invalid UTF-8 to; valid UTF-8 never holds these.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
NOT_UTF8 = "is not valid UTF-8 text (each byte that is not is written here as \\xNN)"


def parse_audit_page(body: bytes) -> tuple[list[AuditEvent], str | None]:
    """The elements of an audit page's `results` and the cursor of the next page.

    One pass of the standard library's C scanner over the page gives both each element's parsed
    value and where its text starts and ends, so `raw` is a slice of the body, not a re-encoding.
    Elements are not checked here: whatever Kandji put in `results` is handed over.
    """
    try:
        text, utf8 = body.decode("utf-8"), True
    except UnicodeDecodeError:
        text, utf8 = body.decode("utf-8", "surrogateescape"), False
    text = text.removeprefix("\ufeff")
    try:
        fields, results = _split_object(text)
    except json.JSONDecodeError as exc:
        raise BadJSON(str(exc)) from None
    except RecursionError:
        raise BadShape("nested too deeply") from None
    except ValueError as exc:  # a number too long to read, outside `results`
        raise BadShape(str(exc).split(":", 1)[0]) from None
    if results is None:
        if not utf8:
            raise BadJSON("not UTF-8 text")
        raise BadShape('no "results" list')
    events = [AuditEvent(value, raw) for value, raw in results]
    if not utf8:
        events = _utf8_checked(text, events)
    return events, _next_cursor(fields.get("next"))


def _utf8_checked(text: str, events: list[AuditEvent]) -> list[AuditEvent]:
    """The events, those holding bytes that are not UTF-8 made Unreadable, their bytes shown.

    Bytes that are not UTF-8 outside every element (in `next`, say) make the page unreadable.
    """
    inside = 0
    checked = []
    for event in events:
        found = len(_NOT_UTF8.findall(event.raw))
        if found:
            inside += found
            raw = event.raw.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            event = AuditEvent(Unreadable(NOT_UTF8), raw)
        checked.append(event)
    if len(_NOT_UTF8.findall(text)) != inside:
        raise BadJSON("not UTF-8 text")
    return checked


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


def parse_admin_page(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The admins of one `GET /api/v1/admins` page, and the cursor of the next page.

    An admin is an object with an `id`; its other fields (`email`, `first_name`, `last_name`,
    `role`, `is_active`) are the reader's to check, as Kandji may leave any of them out."""
    value = _loads(body)
    if not isinstance(value, dict) or not isinstance(value.get("results"), list):
        raise BadShape('no "results" list')
    for number, admin in enumerate(value["results"], 1):
        if not isinstance(admin, dict) or not isinstance(admin.get("id"), str) or not admin["id"]:
            raise BadShape(f"item {number} is not an admin with an id")
    return value["results"], _next_cursor(value.get("next"))


def parse_device_details(body: bytes) -> dict[str, Any]:
    value = _loads(body)
    if not isinstance(value, dict):
        raise BadShape("not a device details object")
    return value


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
        value, end = _element(text, index)
        items.append((value, text[index:end]))
        index = _skip(text, end)
        if not text.startswith(",", index):
            return items, _expect(text, index, "]")
        index = _skip(text, index + 1)


def _element(text: str, index: int) -> tuple[Any, int]:
    """The element of `results` at `index` and where it ends.

    An object or list that cannot be read (invalid JSON inside it, too deep, too long a number)
    but whose brackets close is Unreadable, so that it alone is set aside; anything else that
    cannot be read is the page's error (a body cut short never closes its brackets).
    """
    try:
        return _decoder.raw_decode(text, index)
    except json.JSONDecodeError as exc:
        if not text.startswith(("[", "{"), index):
            raise
        reason = f"is not valid JSON ({exc.msg})"
    except RecursionError:
        reason = "is nested too deeply to read (more levels of objects and lists than Python reads)"
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        reason = f"cannot be read: {str(exc).split(':', 1)[0]}"
    return Unreadable(reason), _value_end(text, index)


_CLOSING = {"[": "]", "{": "}"}


def _value_end(text: str, index: int) -> int:
    """Where the JSON value at `index` ends, found without recursion: brackets are matched and
    strings skipped. Text whose brackets do not match or close raises JSONDecodeError."""
    if not text.startswith(("[", "{"), index):
        match = _NUMBER.match(text, index)
        if match is None:
            raise json.JSONDecodeError("Expecting value", text, index)
        return match.end()
    expected: list[str] = []
    position = index
    while position < len(text):
        char = text[position]
        if char == '"':
            _, position = scanstring(text, position + 1, False)
            continue
        if char in _CLOSING:
            expected.append(_CLOSING[char])
        elif char in "]}":
            if expected.pop() != char:
                raise json.JSONDecodeError("Brackets that do not match", text, position)
            if not expected:
                return position + 1
        position += 1
    raise json.JSONDecodeError("Unterminated array or object", text, index)


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
