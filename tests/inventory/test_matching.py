"""Matching devices to records: upsert by identifier, and conflicts reported, never guessed."""

from kandji_bridge.assets.convert import encode
from kandji_bridge.inventory.links import Link
from kandji_bridge.inventory.matching import Device, match

SERIAL, TAG = 1, 2


def device(device_id: str, serial: str | None, tag: str | None = None) -> Device:
    values = {SERIAL: serial, TAG: tag}
    return Device(device_id, f"Mac {device_id}", None, False, encode(serial), values)


def key(value: str) -> str:
    return encode(value) or ""


def test_new_devices_make_records_and_known_identifiers_update_theirs() -> None:
    plan = match([device("a", "S1"), device("b", "S2")], {key("S2"): "rec-2"}, {}, "Serial Number")
    assert [(t.device.id, t.record_id) for t in plan.targets] == [("a", None), ("b", "rec-2")]
    assert not plan.skipped and not plan.conflicts and not plan.vanished


def test_an_empty_identifier_is_skipped_with_the_reason() -> None:
    plan = match([device("a", None)], {}, {}, "Serial Number")
    assert [str(problem) for problem in plan.skipped] == [
        "device Mac a (a): its Serial Number is empty"
    ]
    assert not plan.targets


def test_a_device_that_cannot_be_converted_is_skipped_with_the_reason() -> None:
    broken = device("a", "S1")
    broken.problem = "its last_check_in cannot go into the datetime field 'Seen' (...)"
    plan = match([broken], {}, {}, "Serial Number")
    assert plan.skipped[0].reason == broken.problem


def test_two_devices_with_one_identifier_value_are_both_left_out() -> None:
    plan = match([device("a", "S1"), device("b", "S1"), device("c", "S3")], {}, {}, "Serial Number")
    assert [t.device.id for t in plan.targets] == ["c"]
    assert [problem.device.id for problem in plan.conflicts] == ["a", "b"]
    assert plan.conflicts[0].reason == (
        "its Serial Number 'S1' is shared by 2 devices: Mac a (a), Mac b (b)"
    )


def test_two_devices_sharing_another_unique_fields_value_are_both_left_out() -> None:
    devices = [device("a", "S1", "T1"), device("b", "S2", "T1"), device("c", "S3", "T3")]
    plan = match(devices, {}, {}, "Serial Number", unique={TAG: "Asset Tag"})
    assert [t.device.id for t in plan.targets] == ["c"]
    assert {problem.device.id for problem in plan.conflicts} == {"a", "b"}
    assert "its Asset Tag 'T1' is shared by 2 devices" in plan.conflicts[0].reason


def test_a_device_stays_with_its_record_when_its_identifier_changes() -> None:
    # Imported with tag T1; the admin fixed the tag to T2 in Kandji.
    plan = match([device("a", "T2")], {key("T1"): "rec-1"}, {"a": Link("rec-1", None)}, "Tag")
    assert [(t.device.id, t.record_id) for t in plan.targets] == [("a", "rec-1")]


def test_a_record_two_devices_would_claim_is_a_conflict() -> None:
    # a was imported into rec-1 (tag T1) and now has T2; b now carries T1.
    plan = match(
        [device("a", "T2"), device("b", "T1")],
        {key("T1"): "rec-1"},
        {"a": Link("rec-1", None)},
        "Tag",
    )
    assert not plan.targets
    assert {problem.device.id for problem in plan.conflicts} == {"a", "b"}
    assert plan.conflicts[0].reason == (
        "the record with Tag 'T1' is claimed by Mac a (a) and Mac b (b)"
    )


def test_a_record_linked_to_another_listed_device_is_not_taken() -> None:
    # a owns rec-1 but is skipped this time (no tag); b claims rec-1 by value.
    plan = match(
        [device("a", None), device("b", "T1")],
        {key("T1"): "rec-1"},
        {"a": Link("rec-1", None)},
        "Tag",
    )
    assert not plan.targets
    assert [problem.device.id for problem in plan.conflicts] == ["b"]
    assert "claimed by Mac b (b) and a" in plan.conflicts[0].reason


def test_a_device_whose_link_and_identifier_disagree_is_a_conflict() -> None:
    plan = match(
        [device("a", "T2")],
        {key("T1"): "rec-1", key("T2"): "rec-2"},
        {"a": Link("rec-1", None)},
        "Tag",
    )
    assert not plan.targets
    assert plan.conflicts[0].reason == (
        "it was imported into the record with Tag 'T1', but its Tag 'T2' belongs to another record"
    )


def test_a_re_enrolled_device_inherits_the_record_of_its_vanished_predecessor() -> None:
    # old-a left Kandji; new-a has the same serial number.
    plan = match([device("new-a", "S1")], {key("S1"): "rec-1"}, {"old-a": Link("rec-1", None)}, "S")
    assert [(t.device.id, t.record_id, t.takes_over) for t in plan.targets] == [
        ("new-a", "rec-1", "old-a")
    ]
    assert plan.vanished == []


def test_records_of_devices_no_longer_listed_are_vanished() -> None:
    links = {"a": Link("rec-1", None), "gone": Link("rec-2", None)}
    plan = match([device("a", "S1")], {key("S1"): "rec-1", key("S2"): "rec-2"}, links, "S")
    assert plan.vanished == ["rec-2"]
