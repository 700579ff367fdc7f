"""GET /api/v1/devices and /api/v1/devices/{id}/details: offset paging returns each device once
in every ordering, the documented filters select what the docs say, details match the list."""

from collections.abc import Callable
from typing import Any

import pytest

from kandji_bridge.simulator.server import RunningSimulator

from .helpers import all_devices, client


@pytest.fixture
def fleet(simulator_factory: Callable[..., RunningSimulator]) -> RunningSimulator:
    """More devices than one page of 300, and no rate limit to wait for."""
    return simulator_factory(devices=650, events=10, seed=11, rate_per_second=0)


@pytest.mark.parametrize(
    "ordering", [None, "-last_check_in", "serial_number,platform", "user", "-os_version", "model"]
)
def test_offset_paging_returns_each_device_exactly_once(
    fleet: RunningSimulator, ordering: str | None
) -> None:
    params = {"ordering": ordering} if ordering else {}
    with client(fleet) as http:
        for limit in (300, 7):
            devices = all_devices(http, params, limit=limit)
            ids = [d["device_id"] for d in devices]
            assert len(ids) == len(set(ids)) == 650


def test_the_default_order_is_stable(fleet: RunningSimulator) -> None:
    with client(fleet) as http:
        assert all_devices(http) == all_devices(http, limit=100)


def test_limit_is_capped_at_300(fleet: RunningSimulator) -> None:
    with client(fleet) as http:
        response = http.get("/api/v1/devices", params={"limit": "1000"})
        assert isinstance(response.json(), list)
        assert len(response.json()) == 300
        assert len(http.get("/api/v1/devices", params={"offset": "600"}).json()) == 50


@pytest.mark.parametrize(
    ("ordering", "key", "reverse"),
    [
        ("serial_number", lambda d: d["serial_number"], False),
        ("-device_name", lambda d: d["device_name"], True),
        ("last_check_in", lambda d: d["last_check_in"], False),
        ("platform,-serial_number", lambda d: (d["platform"], _desc(d["serial_number"])), False),
    ],
)
def test_ordering(fleet: RunningSimulator, ordering: str, key: Callable, reverse: bool) -> None:
    with client(fleet) as http:
        devices = all_devices(http, {"ordering": ordering})
    assert devices == sorted(devices, key=key, reverse=reverse)


def _desc(text: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in text)


def test_an_unknown_ordering_field_is_a_400(fleet: RunningSimulator) -> None:
    with client(fleet) as http:
        response = http.get("/api/v1/devices", params={"ordering": "color"})
    assert response.status_code == 400
    assert response.json() == {"ordering": ['"color" is not a valid ordering field.']}


def _user(device: dict[str, Any], field: str) -> str:
    return device["user"][field] if device["user"] else ""


def test_filters_select_what_the_docs_say(fleet: RunningSimulator) -> None:
    with client(fleet) as http:
        devices = all_devices(http)
        mac = next(d for d in devices if d["platform"] == "Mac" and d["user"] and d["tags"])
        tags = {tag.name: tag.id for tag in fleet.tenant.tags}
        two_tags = sorted(tags)[:2]
        part, name, email = mac["serial_number"][2:7], _user(mac, "name"), _user(mac, "email")
        cases: list[tuple[dict[str, str], Callable[[dict], bool]]] = [
            ({"platform": "iPad"}, lambda d: d["platform"] == "iPad"),
            ({"serial_number": part}, lambda d: part in d["serial_number"]),
            ({"model": "MacBook"}, lambda d: "MacBook" in d["model"]),
            ({"os_version": "15."}, lambda d: "15." in d["os_version"]),
            ({"device_id": mac["device_id"]}, lambda d: d == mac),
            ({"device_name": mac["device_name"]}, lambda d: d["device_name"] == mac["device_name"]),
            ({"asset_tag": mac["asset_tag"]}, lambda d: d["asset_tag"] == mac["asset_tag"]),
            (
                {"blueprint_id": mac["blueprint_id"]},
                lambda d: d["blueprint_id"] == mac["blueprint_id"],
            ),
            ({"user_id": _user(mac, "id")}, lambda d: _user(d, "id") == _user(mac, "id")),
            ({"user": name[:4]}, lambda d: name[:4].lower() in _user(d, "name").lower()),
            ({"user_name": name}, lambda d: name.lower() in _user(d, "name").lower()),
            ({"user_email": email[:5].upper()}, lambda d: email[:5] in _user(d, "email")),
            ({"user_email_exact": email}, lambda d: _user(d, "email") == email),
            ({"tag_name": mac["tags"][0]}, lambda d: mac["tags"][0] in d["tags"]),
            ({"tag_name_in": ", ".join(two_tags)}, lambda d: bool(set(two_tags) & set(d["tags"]))),
            ({"tag_id": tags[mac["tags"][0]]}, lambda d: mac["tags"][0] in d["tags"]),
            (
                {"tag_id_in": ",".join(tags[t] for t in two_tags)},
                lambda d: bool(set(two_tags) & set(d["tags"])),
            ),
        ]
        for params, wanted in cases:
            expected = [d["device_id"] for d in devices if wanted(d)]
            got = [d["device_id"] for d in all_devices(http, params)]
            assert got == expected, params
            assert expected, f"{params} should match something in this tenant"
        assert http.get("/api/v1/devices", params={"platform": "Windows"}).json() == []


def test_filevault_and_mac_address_filters_agree_with_details(fleet: RunningSimulator) -> None:
    with client(fleet) as http:
        macs = all_devices(http, {"platform": "Mac"})
        details = {
            d["device_id"]: http.get(f"/api/v1/devices/{d['device_id']}/details").json()
            for d in macs
        }
        for value in (True, False):
            got = {d["device_id"] for d in all_devices(http, {"filevault_enabled": str(value)})}
            wanted = {i for i, x in details.items() if x["filevault"]["filevault_enabled"] is value}
            assert got == wanted and wanted
        some = next(iter(details.values()))
        found = all_devices(http, {"mac_address": some["network"]["mac_address"]})
        assert [d["device_id"] for d in found] == [some["general"]["device_id"]]


def test_details_agree_with_the_list(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        for device in all_devices(http):
            details = http.get(f"/api/v1/devices/{device['device_id']}/details").json()
            general = details["general"]
            for field in (
                "device_id",
                "device_name",
                "model",
                "platform",
                "os_version",
                "supplemental_build_version",
                "supplemental_os_version_extra",
                "asset_tag",
                "blueprint_name",
                "first_enrollment",
                "last_enrollment",
            ):
                assert general[field] == device[field], field
            assert general["assigned_user"] == device["user"]
            assert general["blueprint_uuid"] == device["blueprint_id"]
            assert details["hardware_overview"]["serial_number"] == device["serial_number"]
            assert details["mdm"]["mdm_enabled"] == str(device["mdm_enabled"])  # "True" / "False"
            assert details["kandji_agent"]["agent_installed"] == str(device["agent_installed"])
            assert details["kandji_agent"]["agent_version"] == device["agent_version"]
            assert details["kandji_agent"]["last_check_in"] == device["last_check_in"]
            assert details["tags"] == device["tags"]
            lost = details.get("lost_mode", {}).get("lost_mode_status", "")
            assert lost == device["lost_mode_status"]


def test_details_of_an_unknown_device_are_a_404(simulator: RunningSimulator) -> None:
    with client(simulator) as http:
        response = http.get("/api/v1/devices/3c2a6f5e-0000-4000-8000-000000000000/details")
    assert (response.status_code, response.json()) == (404, {"detail": "Not found."})
