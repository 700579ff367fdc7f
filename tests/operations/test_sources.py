"""Source operations: one check of a new source's fields for the CLI and the web, the rule that
keeps a source from being saved, and adding one (against the simulator where Kandji answers)."""

import pytest

from kandji_bridge import source_registry
from kandji_bridge.db import StateDB
from kandji_bridge.jobs import status as jobs
from kandji_bridge.operations.sources import (
    add_source,
    blocking_check,
    check_new_source,
    verify_source,
    verify_token,
)

TOKENS = {"full-token": {"audit", "devices", "details"}, "devices-token": {"devices"}}


@pytest.fixture
def sim(simulator_factory):
    return simulator_factory(devices=3, events=30, history_days=30, seed=71, tokens=TOKENS)


def test_every_bad_field_gets_its_own_sentence(sim, runtime_for, state: StateDB) -> None:
    settings = runtime_for(sim).settings
    source_registry.add_source(state, "acme", sim.base_url, "full-token")

    new, errors = check_new_source(settings, state, "acme", "ftp://nowhere", " ", 0, 99_999)

    assert new is None
    assert set(errors) == {"name", "api_url", "token", "poll_interval", "retention_days"}
    assert errors["name"].startswith("A source named acme already exists")
    assert "ftp://nowhere" in errors["api_url"] or "https" in errors["api_url"]
    assert "paste the token" in errors["token"]
    assert errors["poll_interval"].endswith("from 1 to 86400, not 0.")
    assert errors["retention_days"].endswith("from 1 to 3650, not 99999.")
    assert all(sentence.endswith(".") for sentence in errors.values())

    _, errors = check_new_source(settings, state, "bad/name", sim.base_url, "t", 60, 730)
    assert list(errors) == ["name"] and "'/'" in errors["name"]


def test_a_good_source_is_checked_verified_and_added(sim, runtime_for, state: StateDB) -> None:
    runtime = runtime_for(sim)
    new, errors = check_new_source(
        runtime.settings, state, " acme ", sim.base_url, " full-token\n", 30, 90
    )
    assert errors == {} and new is not None
    assert (new.name, new.token, new.api_url.base_url) == ("acme", "full-token", sim.base_url)
    assert "full-token" not in repr(new)
    report = verify_token(runtime.settings, new.api_url.base_url, new.token)
    assert blocking_check(report) is None

    info = add_source(state, new, runtime.jobs)

    assert (info.poll_interval_seconds, info.retention_days) == (30, 90)
    assert jobs.job_status(state, jobs.source_job(info.id)) is None, (
        "without a scheduler nothing polls on its own: the first poll waits for Poll now"
    )
    assert verify_source(runtime.settings, state, "acme").ok


def test_a_token_without_list_audit_events_blocks_the_save(sim, runtime_for) -> None:
    settings = runtime_for(sim).settings
    report = verify_token(settings, sim.base_url, "devices-token")
    failed = blocking_check(report)
    assert failed is not None and failed.name == "List audit events"
    refused = blocking_check(verify_token(settings, sim.base_url, "wrong-token"))
    assert refused is not None and refused.name == "token"
