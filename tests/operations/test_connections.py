"""Kandji connections that never break each other, and editing a source: against the simulator
over HTTP, the real state DB and chDB."""

import pytest

from inventory.helpers import make_mapping
from kandji_bridge import source_registry as sources
from kandji_bridge.db import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.kandji.permissions import ADMINS
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations import connection
from kandji_bridge.operations.polling import poll_source
from kandji_bridge.operations.sources import update_source, verify_source, verify_token

TOKENS = {
    "full-token": {"audit", "devices", "details", "admins"},
    "no-admins-token": {"audit", "devices", "details"},
    "logs-token": {"audit"},
    "device-import-token": {"devices", "details"},
    "list-only-token": {"devices"},
}


@pytest.fixture
def sim(simulator_factory):
    return simulator_factory(devices=3, events=40, history_days=30, seed=83, tokens=TOKENS)


def test_a_device_key_never_replaces_a_log_source_token(sim, runtime_for, state: StateDB) -> None:
    settings = runtime_for(sim).settings
    sources.add_source(state, "acme", sim.base_url, "logs-token", permissions=("audit",))

    refused = connection.test_and_save_connection(
        settings, state, sim.base_url, "device-import-token"
    )

    assert not refused.ok
    assert refused.conflict is not None and refused.conflict.name == "acme"
    sentence = refused.errors["api_key"]
    assert '"List audit events" (GET /api/v1/audit/events)' in sentence
    assert "the audit log collection of source acme" in sentence
    assert "nothing was saved" in sentence
    assert sources.get_source_token(state, "acme") == "logs-token"
    assert [info.name for info in sources.list_sources(state)] == ["acme"]


def test_a_device_key_kept_apart_is_a_connection_of_its_own(
    sim, runtime_for, state: StateDB
) -> None:
    settings = runtime_for(sim).settings
    sources.add_source(state, "acme", sim.base_url, "logs-token", permissions=("audit",))

    saved = connection.test_and_save_connection(
        settings, state, sim.base_url, "device-import-token", separate=True
    )

    assert saved.ok and saved.source is not None
    assert saved.source.name != "acme" and not saved.source.logs_enabled
    assert saved.source.permissions == ("devices", "details")
    assert sources.get_source_token(state, "acme") == "logs-token"
    assert sources.get_source_token(state, saved.source.name) == "device-import-token"
    # New mappings import through the key that may list devices, not the newest source.
    sources.update_source(state, "acme", poll_interval=120)
    current = connection.current_connection(state)
    assert current is not None and current.name == saved.source.name
    # A second device key for the tenant rotates the device connection, not the log source.
    again = connection.test_and_save_connection(settings, state, sim.base_url, "full-token")
    assert again.ok and again.source is not None and again.source.name == saved.source.name
    assert sources.get_source_token(state, "acme") == "logs-token"


def test_a_key_with_every_permission_a_source_uses_replaces_its_token(
    sim, runtime_for, state: StateDB
) -> None:
    settings = runtime_for(sim).settings
    sources.add_source(state, "acme", sim.base_url, "logs-token")

    saved = connection.test_and_save_connection(settings, state, sim.base_url, "full-token")

    assert saved.ok and saved.source is not None and saved.source.name == "acme"
    assert saved.replaced is not None and saved.replaced.name == "acme"
    assert sources.get_source_token(state, "acme") == "full-token"
    assert saved.source.permissions == ("audit", "devices", "details")


def test_the_connections_show_what_uses_them_and_with_which_permissions(
    sim, runtime_for, state: StateDB, itam
) -> None:
    settings = runtime_for(sim).settings
    sources.add_source(state, "acme", sim.base_url, "logs-token", permissions=("audit",))
    saved = connection.test_and_save_connection(
        settings, state, sim.base_url, "device-import-token", separate=True
    )
    assert saved.source is not None
    make_mapping(state, source=saved.source.name, fields=("serial_number=Serial",))

    shown = {uses.source.name: uses for uses in connection.mapping_connections(state)}

    assert list(shown) == [saved.source.name]
    assert shown[saved.source.name].mappings == ["devices"]
    assert shown[saved.source.name].permission_labels == ["Device list", "Device details"]


def test_rotating_a_token_refuses_one_that_lacks_what_a_mapping_uses(
    sim, runtime_for, state: StateDB, store: ChdbLogStore, itam
) -> None:
    runtime = runtime_for(sim)
    sources.add_source(state, "acme", sim.base_url, "full-token")
    make_mapping(state, source="acme", fields=("os_version=Name", "serial_number=Serial"))

    with pytest.raises(BridgeError) as refused:
        update_source(runtime.settings, state, store, "acme", token="logs-token")

    assert str(refused.value).startswith(
        'This token lacks "Device list" (GET /api/v1/devices), which mapping devices uses'
    )
    assert "logs-token" not in str(refused.value)
    assert sources.get_source_token(state, "acme") == "full-token"


def test_a_token_kandji_refuses_changes_nothing(
    sim, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    runtime = runtime_for(sim)
    sources.add_source(state, "acme", sim.base_url, "full-token")

    with pytest.raises(BridgeError) as refused:
        update_source(
            runtime.settings, state, store, "acme", token="revoked-token", poll_interval=300
        )

    assert "The new token was not saved and source acme keeps its token" in str(refused.value)
    assert sources.get_source_token(state, "acme") == "full-token"
    assert sources.get_source(state, "acme").poll_interval_seconds == 60


def test_a_rotated_token_keeps_the_events_and_the_checkpoint(
    sim, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    runtime = runtime_for(sim)
    info = sources.add_source(state, "acme", sim.base_url, "full-token")
    first = poll_source(runtime.settings, state, store, runtime.enricher, "acme")
    checkpoint = store.latest_checkpoint(info.id)

    result = update_source(
        runtime.settings,
        state,
        store,
        "acme",
        token="logs-token",
        poll_interval=300,
        display_name="Acme (production)",
    )

    assert result.changed == ["token", "poll interval", "display name"]
    assert sources.get_source_token(state, "acme") == "logs-token"
    updated = sources.get_source(state, "acme")
    assert (updated.poll_interval_seconds, updated.shown_name) == (300, "Acme (production)")
    assert updated.permissions == ("audit",)
    assert store.count(info.id) == first.stored == 40
    assert store.latest_checkpoint(info.id) == checkpoint
    sim.state.add_generated_events(3)
    again = poll_source(runtime.settings, state, store, runtime.enricher, "acme")
    assert (again.backfill, again.stored, store.count(info.id)) == (False, 3, 43)


def test_a_new_retention_applies_to_the_events_already_stored(
    sim, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    runtime = runtime_for(sim)
    info = sources.add_source(state, "acme", sim.base_url, "full-token")
    poll_source(runtime.settings, state, store, runtime.enricher, "acme")

    update_source(runtime.settings, state, store, "acme", retention_days=400)

    assert sources.get_source(state, "acme").retention_days == 400
    kept = store.query(
        "SELECT DISTINCT sourceTTL FROM kandji_logs WHERE sourceID = {id:String}",
        params={"id": info.id},
    )
    assert [list(row) for row in kept.rows] == [[400]]


def test_verify_shows_list_admins_as_optional(sim, runtime_for, state: StateDB) -> None:
    settings = runtime_for(sim).settings

    without = verify_token(settings, sim.base_url, "no-admins-token")
    sources.add_source(state, "acme", sim.base_url, "full-token")
    with_it = verify_source(settings, state, "acme")

    assert without.ok, "a token without List admins passes verify"
    missing = without.check(ADMINS.label)
    assert missing.optional and missing.ok is None
    assert "optional, not granted" in missing.detail and "admins' names" in missing.detail
    assert with_it.ok and with_it.check(ADMINS.label).ok is True
    assert sources.get_source(state, "acme").permissions == (
        "audit",
        "devices",
        "details",
        "admins",
    )
