"""What the records table sorts and searches on, computed once when a record is written.

A field's *sort key* is its value as text that sorts right by code point (byte order on both
backends): numbers encoded so their text order is their numeric order, datetimes by the second,
text ignoring case. An empty value's key is "", the smallest, so empty values come first. Keys
are rows of `record_sort_keys`, one per record and field, whose primary key (field, key, record)
gives any field's order straight from an index.

A record's *search text* is its values in lower case, separated by a character no value keeps,
so a search is one substring test per record and never matches across two values.
"""

import struct

from kandji_bridge.assets.collections import FieldInfo
from kandji_bridge.assets.convert import FieldType, Value, text

# Text keys keep their first characters only: an index entry has a size limit (PostgreSQL's
# B-tree about 2,700 bytes), and values sharing this much are ordered by record instead.
TEXT_KEY_LENGTH = 200
SEPARATOR = "\x1f"  # ASCII unit separator, between values in the search text
_SIGN = 1 << 63
_ALL = (1 << 64) - 1


def sort_key(value: Value, field_type: FieldType) -> str:
    if value is None:
        return ""
    if field_type is FieldType.NUMBER and isinstance(value, int | float):
        return _number_key(float(value))
    if field_type is FieldType.BOOLEAN and isinstance(value, bool):
        return "1" if value else "0"
    if field_type is FieldType.DATETIME and isinstance(value, str):
        return value[:19]  # ISO text with a varying fraction does not sort right below the second
    return text(value).lower()[:TEXT_KEY_LENGTH] or " "  # never "": that is the empty value's


def field_keys(fields: tuple[FieldInfo, ...], values: dict[int, Value]) -> dict[int, str]:
    """field id -> sort key, for every field of the collection (empty ones included)."""
    return {field.id: sort_key(values.get(field.id), field.type) for field in fields}


def search_text(values: dict[int, Value]) -> str:
    shown = (search_term(text(value)) for value in values.values() if value is not None)
    return SEPARATOR.join(shown)


def search_term(term: str) -> str:
    """A search (or a value) as the search text holds it."""
    return term.lower().replace(SEPARATOR, " ")


def _number_key(number: float) -> str:
    """16 hex digits whose order is the numbers' order: the IEEE 754 bits, with the sign bit
    flipped for positive numbers and every bit flipped for negative ones."""
    bits = struct.unpack(">Q", struct.pack(">d", number))[0]
    bits = bits ^ _ALL if bits & _SIGN else bits | _SIGN
    return f"{bits:016x}"
