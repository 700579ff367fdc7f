"""The seeded tenant: same seed and clock, same data; realistic devices, users and audit events;
token options; what `simulate` announces."""

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from kandji_bridge.simulator import catalog
from kandji_bridge.simulator.config import (
    PERMISSION_KEYS,
    SimulatorConfig,
    parse_token_option,
    resolved_tokens,
)
from kandji_bridge.simulator.server import (
    RunningSimulator,
    announcement,
    running_simulator,
)

from .helpers import all_devices, all_events, client

NOW = datetime(2025, 3, 17, 22, 29, 25, tzinfo=UTC)


def snapshot(simulator: RunningSimulator) -> tuple:
    with client(simulator) as http:
        devices = all_devices(http)
        details = http.get(f"/api/v1/devices/{devices[0]['device_id']}/details").json()
        return simulator.token, devices, details, all_events(http, {"limit": "500"})


def test_same_seed_same_data_different_seed_different_data(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    def start(seed: int) -> RunningSimulator:
        return simulator_factory(devices=30, events=700, seed=seed, now=NOW, rate_per_second=0)

    first, again, other = snapshot(start(5)), snapshot(start(5)), snapshot(start(6))
    assert first == again
    for mine, theirs in zip(first, other, strict=True):
        assert mine != theirs


@pytest.fixture(scope="module")
def tenant() -> dict:
    """One larger tenant, read over HTTP once for the realism checks."""
    config = SimulatorConfig(devices=500, events=6000, seed=21, now=NOW, rate_per_second=0)
    with running_simulator(config) as simulator, client(simulator) as http:
        return {"devices": all_devices(http), "events": all_events(http, {"limit": "500"})}


def test_devices_look_like_a_real_fleet(tenant: dict) -> None:
    devices = tenant["devices"]
    platforms = Counter(d["platform"] for d in devices)
    assert set(platforms) == {"Mac", "iPhone", "iPad", "AppleTV"}
    assert platforms["Mac"] > len(devices) / 2
    models = {m.name: m.platform for m in catalog.MODELS}
    builds = {(p, v, b, x) for p, versions in catalog.OS_VERSIONS.items() for v, b, x in versions}
    serials = [d["serial_number"] for d in devices]
    assert len(set(serials)) == len(serials)
    for device in devices:
        assert re.fullmatch(r"[0-9A-Z]{10}|[0-9A-Z]{12}", device["serial_number"])
        assert models[device["model"]] == device["platform"]
        key = (device["platform"], device["os_version"], device["supplemental_build_version"])
        assert (*key, device["supplemental_os_version_extra"]) in builds
        for field in ("first_enrollment", "last_enrollment"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}\+00:00", device[field])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", device["last_check_in"])
        assert device["first_enrollment"] <= device["last_enrollment"]
        if device["platform"] != "Mac":
            assert device["agent_version"] == ""
        elif device["agent_installed"]:
            assert re.fullmatch(r"\d+\.\d+\.\d+ \(\d+\)", device["agent_version"])
    users = [d["user"] for d in devices if d["user"]]
    assert any(d["user"] == "" for d in devices)
    assert any(u["is_archived"] for u in users) and any(not u["active"] for u in users)
    assert {d["asset_tag"] == "" for d in devices} == {True, False}
    for flag in ("is_missing", "is_removed"):
        assert 0 < sum(d[flag] for d in devices) < len(devices) / 10
    assert any(d["lost_mode_status"] == "ENABLED" for d in devices)
    assert len({d["blueprint_name"] for d in devices}) >= 5
    assert any(d["tags"] for d in devices) and any(not d["tags"] for d in devices)


# (action, target_type, target_component) of every kind of audit event the simulator makes.
KINDS = {
    ("update", "blueprint", "library_items"),
    ("update", "blueprint", "parameters"),
    ("create", "blueprint", ""),
    ("delete", "blueprint", ""),
    ("create", "library_item", ""),
    ("update", "library_item", ""),
    ("delete", "library_item", ""),
    ("create", "device", "enrollment"),
    ("update", "device", "blueprint"),
    ("delete", "device", ""),
    ("delete", "device", "mdm"),
    ("update", "device", "device_name"),
    ("update", "device", "os_version"),
    ("view", "device", "filevault_key"),
    ("view", "device", "recovery_password"),
    ("view", "device", "activation_lock_bypass_code"),
    ("create", "api_token", ""),
    ("update", "api_token", ""),
    ("delete", "api_token", ""),
    ("create", "admin_user", ""),
    ("update", "admin_user", ""),
    ("delete", "admin_user", ""),
    ("delete", "directory_user", ""),
    ("update", "tenant", "owner"),
}


def test_audit_events_cover_every_kind_over_the_history(tenant: dict) -> None:
    events = tenant["events"]
    kinds = {(e["action"], e["target_type"], e["target_component"]) for e in events}
    assert kinds == KINDS
    assert {e["actor_type"] for e in events} == {"user", "api_token", "system"}
    start = NOW - timedelta(days=365)
    assert all(start <= datetime.fromisoformat(e["occurred_at"]) < NOW for e in events)
    device_ids = {d["device_id"] for d in tenant["devices"]}
    assert all(e["target_id"] in device_ids for e in events if e["target_type"] == "device")


def test_a_third_of_audit_events_carry_client_addresses(tenant: dict) -> None:
    events = tenant["events"]
    addresses = [e["metadata"]["ip_address"] for e in events if "ip_address" in e["metadata"]]
    assert 0.2 < len(addresses) / len(events) < 0.4
    assert set(addresses) == set(catalog.PUBLIC_IPS) | set(catalog.PRIVATE_IPS)
    assert {"81.2.69.142", "89.160.20.112", "216.160.83.56", "10.0.4.17"} <= set(addresses)
    with_address = [e for e in events if "ip_address" in e["metadata"]]
    assert all(e["metadata"]["user_agent"] for e in with_address)
    assert all(e["metadata"]["actor_email"] for e in with_address if e["actor_type"] == "user")
    metadata = [e["metadata"] for e in events]
    assert {} in metadata and {"source_id": None, "source": None} in metadata


def test_token_options() -> None:
    assert parse_token_option("abc") == ("abc", PERMISSION_KEYS)
    assert parse_token_option("abc:audit") == ("abc", frozenset({"audit"}))
    assert parse_token_option("abc:devices, details") == ("abc", frozenset({"devices", "details"}))
    assert parse_token_option("abc:") == ("abc", frozenset())
    with pytest.raises(ValueError, match="Unknown token permission 'logs'; use a comma list"):
        parse_token_option("abc:audit,logs")
    with pytest.raises(ValueError, match="no token value"):
        parse_token_option(":audit")


def test_without_tokens_one_all_powerful_token_comes_from_the_seed() -> None:
    one, same, other = (resolved_tokens(SimulatorConfig(seed=s)) for s in (1, 1, 2))
    assert one == same != other
    assert list(one.values()) == [PERMISSION_KEYS]


def test_the_announcement_has_lines_scripts_can_read(simulator: RunningSimulator) -> None:
    lines = announcement(simulator.state, simulator.host_port)
    assert f"base URL: {simulator.base_url}" in lines
    assert [line for line in lines if line.startswith("token: ")] == [f"token: {simulator.token}"]
    assert (
        lines[-1]
        == f"To let kandji-bridge use it: export KANDJI_BRIDGE_ALLOWED_HOSTS={simulator.host_port}"
    )


def test_a_tenant_without_devices_still_has_an_audit_log(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    simulator = simulator_factory(devices=0, events=300)
    with client(simulator) as http:
        assert http.get("/api/v1/devices").json() == []
        events = all_events(http, {"limit": "500"})
    assert len(events) == 300
    assert all(e["target_type"] != "device" for e in events)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"devices": -1}, "cannot be negative"),
        ({"history_days": 0}, "history_days must be at least 1"),
        ({"fault_rate": 1.5}, "fault_rate must be between 0 and 1"),
        ({"late_event_rate": -0.1}, "late_event_rate must be between 0 and 1"),
        ({"check_in_interval_seconds": 0}, "check_in_interval_seconds must be more than 0"),
    ],
)
def test_impossible_settings_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimulatorConfig(**fields)
