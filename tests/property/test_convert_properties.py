"""The mapping converter against arbitrary values (hypothesis), for every kind and field type.

What must hold: `convert` returns a value of the field's type or raises ConversionError with one
clear line, nothing else; and what it returns is stored and read back unchanged, so a sync that
changes nothing compares equal and writes nothing. Device payloads reach it through orjson, so no
lone surrogates; NaN, infinities and integers beyond 64 bits are tried anyway.
"""

import math
from datetime import date, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kandji_bridge.assets.convert import (
    ConversionError,
    FieldType,
    Kind,
    can_hold,
    cell,
    convert,
    decode,
    encode,
)

from .strategies import clean_text, timestamps


def is_unicode(text: str) -> bool:
    """False for text with a lone surrogate, which orjson never hands over."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


PAIRS = [(kind, ft) for kind in Kind for ft in FieldType if can_hold(ft, kind)]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    clean_text,
    st.sampled_from(["True", "false", " yes ", "0", "1e309", "-0", "nan", "inf", "0x1F", "8 GB"]),
    st.integers().map(str),
    st.floats().map(repr),
    timestamps.filter(lambda t: isinstance(t, str) and is_unicode(t)),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=3),
    max_leaves=8,
)
DEFAULT = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck))

_PYTHON_TYPES = {
    FieldType.TEXT: str,
    FieldType.NUMBER: (int, float),
    FieldType.BOOLEAN: bool,
    FieldType.DATE: str,
    FieldType.DATETIME: str,
    FieldType.LIST: list,
}


def check_convert(raw: object, kind: Kind, field_type: FieldType) -> None:
    try:
        value = convert(raw, kind, field_type)
    except ConversionError as exc:
        message = str(exc)
        assert message.startswith("expected ") and "\n" not in message and len(message) < 120
        return
    if value is None:
        return
    assert isinstance(value, _PYTHON_TYPES[field_type])
    if field_type is FieldType.NUMBER:
        assert not isinstance(value, bool) and math.isfinite(value)
    elif field_type is FieldType.DATE:
        date.fromisoformat(value)  # type: ignore[arg-type]
    elif field_type is FieldType.DATETIME:
        assert value.endswith("Z")  # type: ignore[union-attr]
        datetime.fromisoformat(value)  # type: ignore[arg-type]
    elif field_type is FieldType.LIST:
        assert value and all(isinstance(item, str) for item in value)  # type: ignore[union-attr]
    assert decode(encode(value)) == value  # stored and read back the same
    cell(value, field_type)


@DEFAULT
@given(values, st.sampled_from(PAIRS))
@example(float("nan"), (Kind.NUMBER, FieldType.NUMBER))
@example(float("inf"), (Kind.NUMBER, FieldType.TEXT))
@example(2**64, (Kind.NUMBER, FieldType.NUMBER))
@example(2**70, (Kind.BOOLEAN, FieldType.BOOLEAN))
@example("0001-01-01T00:00:00+01:00", (Kind.TIMESTAMP, FieldType.DATETIME))
def test_convert_returns_a_value_of_the_type_or_refuses(raw, pair) -> None:
    check_convert(raw, *pair)


@pytest.mark.slow
@MANY
@given(values, st.sampled_from(PAIRS))
def test_convert_returns_a_value_of_the_type_or_refuses_many(raw, pair) -> None:
    check_convert(raw, *pair)
