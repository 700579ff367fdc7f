"""Kandji values into collection types: what is converted how, and what is refused."""

import pytest

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

T, N, B, D, DT, L = (FieldType.TEXT, FieldType.NUMBER, FieldType.BOOLEAN, FieldType.DATE,
                     FieldType.DATETIME, FieldType.LIST)  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "kind", "field_type", "expected"),
    [
        # booleans: JSON ones from the list, strings from the details
        (True, Kind.BOOLEAN, B, True),
        ("True", Kind.BOOLEAN, B, True),
        ("False", Kind.BOOLEAN, B, False),
        ("Yes", Kind.BOOLEAN, B, True),
        (False, Kind.BOOLEAN, T, "false"),
        # both of Kandji's timestamp formats
        ("2024-07-23T14:11:37.150080Z", Kind.TIMESTAMP, DT, "2024-07-23T14:11:37.150080Z"),
        ("2024-01-26 16:15:36.087016+00:00", Kind.TIMESTAMP, DT, "2024-01-26T16:15:36.087016Z"),
        ("2024-06-17 11:32:35+00:00", Kind.TIMESTAMP, DT, "2024-06-17T11:32:35Z"),
        ("2024-06-17 23:32:35-02:00", Kind.TIMESTAMP, DT, "2024-06-18T01:32:35Z"),
        ("2024-07-23T14:11:37.150080Z", Kind.TIMESTAMP, D, "2024-07-23"),
        ("2024-01-26 16:15:36.087016+00:00", Kind.TIMESTAMP, D, "2024-01-26"),
        ("2024-01-26 16:15:36.087016+00:00", Kind.TIMESTAMP, T, "2024-01-26 16:15:36.087016+00:00"),
        # tags
        (["accuhive_02", "lab"], Kind.LIST, L, ["accuhive_02", "lab"]),
        (["accuhive_02", "lab"], Kind.LIST, T, "accuhive_02, lab"),
        # numbers, as the details send them
        ("8", Kind.NUMBER, N, 8),
        (228.27, Kind.NUMBER, N, 228.27),
        (128.0, Kind.NUMBER, T, "128.0"),
        # text
        ("FVHHFKF7Q6L4", Kind.TEXT, T, "FVHHFKF7Q6L4"),
        ("Kim\u2019s MacBook Air", Kind.TEXT, T, "Kim\u2019s MacBook Air"),
    ],
)
def test_conversions(raw: object, kind: Kind, field_type: FieldType, expected: object) -> None:
    assert convert(raw, kind, field_type) == expected


@pytest.mark.parametrize("empty", ["", None, []])
@pytest.mark.parametrize("kind", list(Kind))
def test_empty_stays_empty(empty: object, kind: Kind) -> None:
    for field_type in FieldType:
        if can_hold(field_type, kind):
            assert convert(empty, kind, field_type) is None


@pytest.mark.parametrize(
    ("raw", "kind", "field_type", "message"),
    [
        ("maybe", Kind.BOOLEAN, B, 'expected true or false, got "maybe"'),
        ("yesterday", Kind.TIMESTAMP, DT, 'expected a date and time, got "yesterday"'),
        (1721743897, Kind.TIMESTAMP, D, "expected a date and time, got 1721743897"),
        ("8 GB LPDDR4", Kind.NUMBER, N, 'expected a number, got "8 GB LPDDR4"'),
        ("nan", Kind.NUMBER, N, 'expected a number, got "nan"'),
        (True, Kind.NUMBER, N, "expected a number, got true"),
        ("lab", Kind.LIST, L, 'expected a list, got "lab"'),
        ({"id": "x"}, Kind.TEXT, T, 'expected text, got {"id":"x"}'),
    ],
)
def test_values_a_type_cannot_take_are_refused(
    raw: object, kind: Kind, field_type: FieldType, message: str
) -> None:
    with pytest.raises(ConversionError) as caught:
        convert(raw, kind, field_type)
    assert str(caught.value) == message


def test_which_types_hold_which_kinds() -> None:
    for kind in Kind:
        assert can_hold(T, kind)  # text holds anything, written out
    assert can_hold(B, Kind.BOOLEAN) and not can_hold(B, Kind.TEXT)
    assert can_hold(D, Kind.TIMESTAMP) and can_hold(DT, Kind.TIMESTAMP)
    assert not can_hold(N, Kind.TEXT) and not can_hold(N, Kind.BOOLEAN)
    assert can_hold(L, Kind.LIST) and not can_hold(L, Kind.TEXT)


def test_a_value_encodes_to_one_text_so_unchanged_compares_equal() -> None:
    for value in ("x", 8, 228.27, True, ["a", "b"], "2024-01-26"):
        assert decode(encode(value)) == value
        assert encode(decode(encode(value))) == encode(value)
    assert encode(None) is None and decode(None) is None


@pytest.mark.parametrize(
    ("value", "field_type", "shown"),
    [
        (None, T, ""),
        (True, B, "TRUE"),
        (False, B, "FALSE"),
        ("2024-07-23T14:11:37.150080Z", DT, "2024-07-23 14:11:37"),
        ("2024-07-23T14:11:37Z", DT, "2024-07-23 14:11:37"),
        ("2024-07-23", D, "2024-07-23"),
        (["lab", "loaner"], L, "lab, loaner"),
        (8, N, "8"),
        (-3.5, N, "-3.5"),
        ('=HYPERLINK("http://x")', T, '\'=HYPERLINK("http://x")'),  # not run as a formula
        ("+1 555", T, "'+1 555"),
        (["@admin"], L, "'@admin"),
    ],
)
def test_csv_cells(value: object, field_type: FieldType, shown: str) -> None:
    assert cell(value, field_type) == shown  # type: ignore[arg-type]
