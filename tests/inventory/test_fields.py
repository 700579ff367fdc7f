"""The Kandji field catalog: Asset Panda's table word for word, readers that fit Kandji's JSON."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kandji_bridge.inventory.fields import (
    CATALOG,
    DETAIL_FIELDS,
    LIST_FIELDS,
    Endpoint,
    Kind,
    Suitability,
    UnknownField,
    get_field,
    identifier_fields,
)
from testdata import ASSETPANDA_KANDJI_INTEGRATION, KANDJI_POSTMAN

DEVICES = Path(__file__).resolve().parents[1] / "kandji" / "data" / "postman_devices.json"


def assetpanda_table() -> list[tuple[str, str, str]]:
    """(label, description, recommendation) rows of Asset Panda's "Kandji unique identifier
    fields" table: after its three headings, the non-empty lines come in threes."""
    text = ASSETPANDA_KANDJI_INTEGRATION.read_text()
    table = text.split("Kandji Field\nDescription\nUsage Recommendation", 1)[1]
    lines = [line.strip() for line in table.splitlines() if line.strip()]
    lines = lines[: lines.index("Last updated")]
    assert len(lines) % 3 == 0
    return [tuple(lines[i : i + 3]) for i in range(0, len(lines), 3)]  # type: ignore[misc]


def postman_details() -> dict[str, dict[str, Any]]:
    """Kandji's example device details by example name ("Get Mac details", ...)."""
    collection = json.loads(KANDJI_POSTMAN.read_text())
    stack, found = list(collection["item"]), {}
    while stack:
        item = stack.pop()
        stack.extend(item.get("item", []))
        for response in item.get("response", []):
            url = item.get("request", {}).get("url", {})
            raw = url if isinstance(url, str) else url.get("raw", "")
            if raw.endswith("/details") and response.get("body"):
                # The Mac example elides its system users with "..."; drop that line.
                body = re.sub(r",\s*\.\.\.\s*\]", "]", response["body"])
                found[response["name"]] = json.loads(body)
    return found


def test_the_catalog_is_assetpandas_table_word_for_word() -> None:
    rows = assetpanda_table()
    assert len(rows) == 26
    assert [(f.label, f.description, f.recommendation) for f in LIST_FIELDS] == rows


def test_keys_are_the_snake_case_of_the_labels() -> None:
    assert [field.key for field in LIST_FIELDS] == [
        "agent_installed", "agent_version", "asset_tag", "blueprint_id", "blueprint_name",
        "device_id", "device_name", "first_enrollment", "is_missing", "is_removed",
        "last_check_in", "last_enrollment", "lost_mode_status", "mdm_enabled", "model",
        "os_version", "platform", "serial_number", "supplemental_build_version",
        "supplemental_os_version_extra", "tags", "user_active", "user_email", "user_id",
        "user_is_archived", "user_name",
    ]  # fmt: skip
    assert len(CATALOG) == len(LIST_FIELDS) + len(DETAIL_FIELDS)


def test_identifier_suitability_follows_the_recommendations() -> None:
    suitability = {field.key: field.suitability for field in LIST_FIELDS}
    assert suitability["device_id"] is Suitability.RECOMMENDED
    assert suitability["serial_number"] is Suitability.ACCEPTABLE
    assert suitability["user_id"] is Suitability.ACCEPTABLE
    for key in ("asset_tag", "device_name", "user_email", "user_name"):
        assert suitability[key] is Suitability.CONDITIONAL
    assert {field.key for field in identifier_fields()} == {
        "device_id", "serial_number", "user_id", "asset_tag", "device_name", "user_email",
        "user_name",
    }  # fmt: skip
    for field in LIST_FIELDS:  # booleans, dates and group-level data are not identifiers
        if field.kind in (Kind.BOOLEAN, Kind.TIMESTAMP) or "group-level" in field.recommendation:
            assert not field.can_identify, field.key
    assert not any(field.can_identify for field in DETAIL_FIELDS)


def test_detail_fields_need_the_details_call_and_say_so() -> None:
    assert DETAIL_FIELDS
    for field in DETAIL_FIELDS:
        assert field.endpoint is Endpoint.DETAILS and field.needs_details
        assert "device details" in field.recommendation
    for key in (
        "model_identifier", "hardware_uuid", "processor", "memory", "filevault_enabled",
        "supervised", "last_user", "boot_volume_capacity_gb", "boot_volume_free_gb",
        "mac_address", "device_activation_lock",
    ):  # fmt: skip
        assert CATALOG[key].needs_details


def test_list_fields_read_kandjis_device_example() -> None:
    mac, missing = json.loads(DEVICES.read_text())
    values = {field.key: field.read(mac) for field in LIST_FIELDS}
    assert values["device_id"] == "03f81208-2b6a-4a77-81f5-cf1633bcfb95"
    assert values["serial_number"] == "FVHHFKF7Q6L4"
    assert values["user_email"] == "accuhive.admin@kandji.io"
    assert values["user_is_archived"] is False
    assert values["user_active"] is None  # not in this example
    assert values["tags"] == ["accuhive_02"]
    assert values["first_enrollment"] == "2024-01-26 16:15:36.087016+00:00"
    assert CATALOG["is_missing"].read(missing) is True


def test_user_fields_are_empty_when_kandji_sends_an_empty_user() -> None:
    device = {"device_id": "x", "user": ""}
    for key in ("user_email", "user_id", "user_name", "user_active", "user_is_archived"):
        assert CATALOG[key].read(device) is None


def test_detail_fields_read_kandjis_details_examples() -> None:
    examples = postman_details()
    mac, ipad, tv = (
        examples["Get Mac details"],
        examples["Get iPad details"],
        examples["Get AppleTV details"],
    )
    read = {key: CATALOG[key].read for key in CATALOG}
    assert read["model_identifier"](mac) == "MacBookAir10,1"
    assert read["hardware_uuid"](mac) == "3c976d96-08a0-5014-89e4-66259ab79fe6"  # udid
    assert read["hardware_uuid"](ipad) == "00008020-0015308c11a1402e"  # uuid
    assert read["processor"](mac) == "Apple M1"
    assert read["processor_cores"](mac) == "8"
    assert read["memory"](mac) == "8 GB LPDDR4"
    assert read["filevault_enabled"](mac) is False
    assert read["filevault_enabled"](ipad) is None
    assert read["supervised"](mac) == "True"
    assert read["supervised"](tv) is None  # the Apple TV example has no `supervised`
    assert read["last_user"](mac) == "root"
    assert read["boot_volume_capacity_gb"](mac) == 228.27  # the volume named "Macintosh HD"
    assert read["boot_volume_free_gb"](mac) == 182.66
    assert read["boot_volume_capacity_gb"](ipad) == 128.0  # the only volume
    assert read["boot_volume_capacity_gb"](tv) is None  # no volumes
    assert read["mac_address"](mac) == "fc:e2:6c:27:1b:e4"
    assert read["mac_address"](tv) is None  # network: {}
    assert read["device_activation_lock"](mac) is False
    assert read["abm_description"](ipad) == "IPAD WI-FI 128GB SILVER-USA"
    assert read["abm_assigned_date"](ipad) == "2024-02-13 15:23:10+00:00"


def test_fields_are_found_by_key_or_label_and_typos_get_a_suggestion() -> None:
    assert get_field("serial_number").label == "Serial Number"
    assert get_field("Serial Number").key == "serial_number"
    with pytest.raises(UnknownField) as caught:
        get_field("serial_nmber")
    assert str(caught.value) == (
        "'serial_nmber' is not a Kandji device field; did you mean serial_number? "
        "`kandji-bridge mapping fields` lists the keys (device_id, serial_number, ...)."
    )
