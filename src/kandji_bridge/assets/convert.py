"""Imported values into collection field types, and collection values into text, JSON and cells.

A value is None (empty), str (text, and ISO dates and datetimes), int or float, bool, or a list of
str. Stored values are compact JSON, so the same value is always stored as the same text and an
unchanged value compares equal to what is stored.
"""

import json
import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

Value = str | int | float | bool | list[str] | None


class Kind(StrEnum):
    """What a source sends for a field, which decides the collection types that can hold it."""

    TEXT = "text"
    BOOLEAN = "boolean"  # JSON true/false, or the strings "True"/"False"
    TIMESTAMP = "timestamp"  # "2024-07-23T14:11:37.150080Z" or "2024-01-26 16:15:36.087016+00:00"
    LIST = "list"
    NUMBER = "number"


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    LIST = "list"


# Which source kinds each collection type can hold; text holds them all, written out.
HOLDS: dict[FieldType, frozenset[Kind]] = {
    FieldType.TEXT: frozenset(Kind),
    FieldType.NUMBER: frozenset({Kind.NUMBER}),
    FieldType.BOOLEAN: frozenset({Kind.BOOLEAN}),
    FieldType.DATE: frozenset({Kind.TIMESTAMP}),
    FieldType.DATETIME: frozenset({Kind.TIMESTAMP}),
    FieldType.LIST: frozenset({Kind.LIST}),
}

# What a stored value (compact JSON, written by orjson) can hold as an integer.
_INT_RANGE = (-(2**63), 2**64 - 1)
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})


class ConversionError(ValueError):
    """A value a source sent that the field's type cannot take; str() says what it was."""


def can_hold(field_type: FieldType, kind: Kind) -> bool:
    return kind in HOLDS[field_type]


def types_for(kind: Kind) -> list[str]:
    return [field_type.value for field_type, kinds in HOLDS.items() if kind in kinds]


def convert(raw: Any, kind: Kind, field_type: FieldType) -> Value:
    """The source's `raw` value of `kind` as a value of `field_type`; "", null and [] are empty."""
    if raw is None or raw == "" or raw == []:
        return None
    if kind is Kind.BOOLEAN:
        value: Value = _boolean(raw)
    elif kind is Kind.TIMESTAMP:
        moment = _timestamp(raw)
        if field_type is FieldType.DATE:
            return moment.date().isoformat()
        value = format_datetime(moment)
        if field_type is FieldType.TEXT:
            return raw if isinstance(raw, str) else value
    elif kind is Kind.LIST:
        if not isinstance(raw, list):
            raise ConversionError(f"expected a list, got {_shown(raw)}")
        value = [str(item) for item in raw if item not in (None, "")] or None
    elif kind is Kind.NUMBER:
        value = _number(raw)
    else:
        if isinstance(raw, dict | list):
            raise ConversionError(f"expected text, got {_shown(raw)}")
        value = raw if isinstance(raw, str) else text(raw)
    return text(value) if field_type is FieldType.TEXT else value


def format_datetime(moment: datetime) -> str:
    """UTC, ISO 8601, microseconds only when there are some: '2024-07-23T14:11:37.15008Z'."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def text(value: Value) -> str:
    """A value as one line of text: lists comma-separated, booleans true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def encode(value: Value) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def decode(stored: str | None) -> Value:
    return None if stored is None else orjson.loads(stored)


def cell(value: Value, field_type: str) -> str:
    """A CSV cell a spreadsheet reads as the right type (datetimes: UTC, 'YYYY-MM-DD HH:MM:SS')."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if field_type == FieldType.DATETIME and isinstance(value, str):
        return value[:19].replace("T", " ")  # spreadsheets parse whole seconds, not µs
    shown = text(value)
    # A leading = + - @ would make a spreadsheet run the cell as a formula (CSV injection).
    if field_type != FieldType.NUMBER and shown[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + shown
    return shown


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
        return raw.strip().lower() in _TRUE
    raise ConversionError(f"expected true or false, got {_shown(raw)}")


def _timestamp(raw: Any) -> datetime:
    if isinstance(raw, str):
        try:
            moment = datetime.fromisoformat(raw.strip())
        except ValueError:
            pass
        else:
            # Sources give an offset (Kandji always does); a time without one is read as UTC.
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            try:
                moment.astimezone(UTC)  # year 1 or 9999 shifted past what a datetime holds
            except OverflowError:
                pass
            else:
                return moment
    raise ConversionError(f"expected a date and time, got {_shown(raw)}")


def _number(raw: Any) -> int | float:
    if isinstance(raw, int) and not isinstance(raw, bool):
        if _INT_RANGE[0] <= raw <= _INT_RANGE[1]:
            return raw
    elif isinstance(raw, float):
        if math.isfinite(raw):  # NaN would be stored as null, and never compare equal
            return raw
    elif isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            pass
        else:
            if math.isfinite(number):
                whole = number.is_integer() and _INT_RANGE[0] <= number <= _INT_RANGE[1]
                return int(number) if whole else number
    raise ConversionError(f"expected a number, got {_shown(raw)}")


def _shown(raw: Any) -> str:
    try:
        shown = orjson.dumps(raw, default=str).decode()
    except TypeError:  # an integer beyond 64 bits
        shown = json.dumps(raw, default=str, ensure_ascii=False)
    return shown if len(shown) <= 60 else shown[:59] + "…"
