"""A poll also reads who the tenant's admins are, so the logs name people instead of ids; a
token that may not list them still polls, and the refusal is remembered for the UI to explain."""

from kandji_bridge import source_registry as sources
from kandji_bridge.db import StateDB
from kandji_bridge.kandji.permissions import ADMINS
from kandji_bridge.logs import actors
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.operations.polling import poll_source
from kandji_bridge.simulator.config import PERMISSION_KEYS

FULL, NO_ADMINS = "full-token", "no-admins-token"


def test_a_poll_names_the_admins_who_acted(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(devices=3, events=200, history_days=30, seed=71)
    runtime = runtime_for(sim)
    source = sources.add_source(state, "acme", sim.base_url, sim.token)
    result = poll_source(runtime.settings, state, store, runtime.enricher, "acme")
    assert result.error is None and result.stored == 200
    admin = sim.tenant.admins[0]
    name = actors.resolve(state, [admin.id])[admin.id]
    assert name.kind == actors.PERSON and name.email == admin.email
    assert not actors.admins_denied(state, source.id)


def test_a_token_that_may_not_list_admins_still_polls_and_the_refusal_is_kept(
    simulator_factory, runtime_for, state: StateDB, store: ChdbLogStore
) -> None:
    sim = simulator_factory(
        devices=3,
        events=50,
        history_days=30,
        seed=72,
        tokens={FULL: PERMISSION_KEYS, NO_ADMINS: PERMISSION_KEYS - {ADMINS.key}},
    )
    runtime = runtime_for(sim)
    source = sources.add_source(state, "acme", sim.base_url, NO_ADMINS)
    result = poll_source(runtime.settings, state, store, runtime.enricher, "acme")
    assert result.error is None and result.stored == 50
    assert actors.admins_denied(state, source.id)
    admin = sim.tenant.admins[0]
    assert actors.resolve(state, [admin.id])[admin.id].kind == actors.UNKNOWN
