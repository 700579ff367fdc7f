"""The one permission check, against the simulator's tokens with and without each permission."""

import asyncio

import pytest

from kandji_bridge import source_registry as sources
from kandji_bridge.db import StateDB
from kandji_bridge.kandji.errors import AuthenticationError, PermissionDeniedError
from kandji_bridge.kandji.permissions import AUDIT_EVENTS, DEVICE_DETAILS, DEVICE_LIST
from kandji_bridge.operations import connection
from kandji_bridge.operations.verify import check_device_access, verify

TOKENS = {
    "full-token": {"audit", "devices", "details"},
    "audit-token": {"audit"},
    "devices-token": {"devices"},
    "nothing-token": set(),
}


@pytest.fixture
def sim(simulator_factory):
    return simulator_factory(devices=3, events=20, history_days=30, seed=51, tokens=TOKENS)


def outcomes(sim, token: str, **options) -> dict[str, bool | None]:
    report = asyncio.run(verify(sim.base_url, token, frozenset({sim.host_port}), **options))
    return {check.name: check.ok for check in report.checks}


@pytest.mark.parametrize(
    ("token", "audit", "devices", "details"),
    [
        ("full-token", True, True, True),
        ("audit-token", True, False, False),
        ("devices-token", False, True, False),
        ("nothing-token", False, False, False),
    ],
)
def test_each_permission_is_checked_on_its_own(sim, token, audit, devices, details) -> None:
    assert outcomes(sim, token) == {
        "URL": True,
        "token": True,
        AUDIT_EVENTS.label: audit,
        DEVICE_LIST.label: devices,
        DEVICE_DETAILS.label: details,
    }


def test_a_caller_checks_only_the_permissions_it_needs(sim) -> None:
    wanted = (DEVICE_LIST, DEVICE_DETAILS)
    assert outcomes(sim, "devices-token", wanted=wanted) == {
        "URL": True,
        "token": True,
        DEVICE_LIST.label: True,
        DEVICE_DETAILS.label: False,
    }


def test_a_refused_token_skips_the_permissions(sim) -> None:
    report = asyncio.run(verify(sim.base_url, "not-a-token", frozenset({sim.host_port})))
    assert [(c.name, c.ok) for c in report.checks][:2] == [("URL", True), ("token", False)]
    assert all(c.ok is None for c in report.checks[2:])
    assert "not-a-token" not in " ".join(c.detail for c in report.checks)


def test_device_access_raises_what_kandji_answered(sim) -> None:
    hosts = frozenset({sim.host_port})
    asyncio.run(check_device_access(sim.base_url, "devices-token", False, hosts))
    with pytest.raises(PermissionDeniedError) as denied:
        asyncio.run(check_device_access(sim.base_url, "devices-token", True, hosts))
    assert denied.value.permission == DEVICE_DETAILS
    with pytest.raises(AuthenticationError):
        asyncio.run(check_device_access(sim.base_url, "not-a-token", False, hosts))


def test_the_connection_test_names_checks_as_the_integrations_page(
    sim, runtime_for, state: StateDB
) -> None:
    settings = runtime_for(sim).settings
    refused = connection.test_and_save_connection(settings, state, sim.base_url, "devices-token")
    assert not refused.ok
    assert [(c.name, c.ok) for c in refused.checks] == [
        ("Base URL", True),
        ("API Key", True),
        ("Device list", True),
        ("Device details", False),
    ]
    assert "GET /device-details" in refused.errors["api_key"]
    assert sources.list_sources(state) == [], "nothing is saved when a check fails"

    saved = connection.test_and_save_connection(settings, state, sim.base_url, "full-token")
    assert saved.ok and saved.source is not None
    assert saved.source.logs_enabled is False, "the device import's connection is not polled"
    assert connection.current_connection(state) == saved.source
    assert sources.get_source_token(state, saved.source.name) == "full-token"
