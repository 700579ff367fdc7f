"""Sort keys and search text: what the records table orders and searches on."""

from kandji_bridge.assets.collections import FieldInfo
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.assets.keys import SEPARATOR, field_keys, search_term, search_text, sort_key


def test_number_keys_sort_as_the_numbers_do() -> None:
    numbers = [-1e300, -(2**63), -1000, -9.5, -1, -0.0, 0, 1e-9, 1, 9.5, 15, 100, 2**64 - 1, 1e300]
    keys = [sort_key(number, FieldType.NUMBER) for number in numbers]
    assert keys == sorted(keys)
    assert min(keys) > sort_key(None, FieldType.NUMBER) == ""  # an empty value first


def test_text_keys_ignore_case_and_datetimes_sort_by_the_second() -> None:
    names = ["apple", "Banana", "cherry", "Ärger", "zebra", "Éclair"]
    assert sorted(names, key=lambda name: sort_key(name, FieldType.TEXT)) == [
        "apple", "Banana", "cherry", "zebra", "Ärger", "Éclair"
    ]  # fmt: skip
    assert sort_key("2025-01-02T10:00:00.5Z", FieldType.DATETIME) == sort_key(
        "2025-01-02T10:00:00Z", FieldType.DATETIME
    )
    assert sort_key(None, FieldType.TEXT) == "" < sort_key(" ", FieldType.TEXT)
    assert sort_key(False, FieldType.BOOLEAN) < sort_key(True, FieldType.BOOLEAN)
    assert len(sort_key("x" * 5000, FieldType.TEXT)) == 200  # an index entry stays small


def test_every_field_has_a_key_and_the_search_text_keeps_values_apart() -> None:
    fields = (
        FieldInfo(1, "Name", FieldType.TEXT, False),
        FieldInfo(2, "Disk GB", FieldType.NUMBER, False),
    )
    assert field_keys(fields, {1: "Mac"}) == {1: "mac", 2: ""}
    text = search_text({1: "Ana's Mac", 2: 512.5, 3: ["finance", "loaner"], 4: True, 5: "a\x1fb"})
    assert text.split(SEPARATOR) == ["ana's mac", "512.5", "finance, loaner", "true", "a b"]
    assert search_term("MAC" + SEPARATOR) == "mac "
    assert "mac" + SEPARATOR + "5" in text and "mac5" not in text
