"""The simulator's attack scenarios, stored through the product's transform, fire the pack's rules
they are made for (the demo's alerts), and a tenant without them fires none of those.

The tenant's clock is pinned: the night views happen at the last 02:30 UTC, so the result must not
depend on the hour the suite runs."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.fixtures import FixtureEvent
from kandji_bridge.detections.rules import load_rule
from kandji_bridge.detections.run import run_detection
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import ChdbLogStore
from kandji_bridge.logs.transform import transform
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.scenarios import LIVE_VIEWS
from kandji_bridge.simulator.state import SimulatorState

FIRED = (
    "kandji-api-token-sensitive-permissions",
    "kandji-delete-burst",
    "kandji-device-deleted-or-mdm-removed",
    "kandji-secret-viewed-by-new-actor",
    "kandji-secret-viewed-outside-business-hours",
)


def store_tenant(store: ChdbLogStore, scenarios: bool, now: datetime) -> datetime:
    """The tenant's events: those of the last 25 hours received in the window that starts a minute
    after `now`, the rest two days before it (the baseline the new-actor rules compare with).
    Returns the window's start."""
    window_start = now + timedelta(minutes=1)
    tenant = SimulatorState(
        SimulatorConfig(
            devices=40,
            events=400,
            history_days=30,
            seed=5,
            attack_scenarios=scenarios,
            now=now,
            wall_clock=True,  # the newcomer's views, seconds after `now`, are due
        )
    )
    store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
    recent_cut = (window_start - timedelta(hours=25)).strftime("%Y-%m-%dT%H:%M:%S")
    enricher = build_enricher([], use_geoip2fast=False, env={})
    try:
        for recent in (False, True):
            events = [e for e in tenant.all_events() if (e["occurred_at"] >= recent_cut) == recent]
            received = (
                window_start + timedelta(minutes=5) if recent else window_start - timedelta(days=2)
            )
            context = NormalizeContext("ws", "src", 0, received_at=received)
            items = [FixtureEvent(timedelta(0), e, json.dumps(e)) for e in events]
            store.insert(transform(items, context, enricher).rows)
    finally:
        enricher.close()
    return window_start


def matches_per_rule(store: ChdbLogStore, scenarios: bool, now: datetime) -> dict[str, int]:
    window_start = store_tenant(store, scenarios, now)
    fired = {}
    for name in FIRED:
        rule = load_rule(KANDJI_PACK / f"{name}.yaml", store)
        matches = run_detection(store, rule, window_start, window_start + timedelta(minutes=15))
        fired[name] = len(matches.rows)
    return fired


@pytest.mark.parametrize("hour", [3, 9, 23])
def test_the_scenarios_fire_the_rules_made_for_them(store: ChdbLogStore, hour: int) -> None:
    now = datetime(2026, 3, 4, hour, 17, tzinfo=UTC)
    without = matches_per_rule(store, scenarios=False, now=now)
    with_them = matches_per_rule(store, scenarios=True, now=now)
    assert all(with_them[name] > without[name] for name in FIRED), (with_them, without)


def test_a_new_actor_alert_follows_the_backfill(store: ChdbLogStore) -> None:
    """The demo's case: a collector's first pass stores the whole history in one window, which
    leaves no baseline for the new-actor rule there; the newcomer's views come after it, in the
    next poll's window, where the rule fires."""
    tenant = SimulatorState(
        SimulatorConfig(devices=40, events=400, history_days=30, seed=5, attack_scenarios=True)
    )
    backfill = tenant.all_events()
    seen = {e["id"] for e in backfill}
    later: list[dict] = []
    for _ in range(60):  # the newcomer comes seconds after the tenant starts
        later = [e for e in tenant.all_events() if e["id"] not in seen]
        if len(later) >= LIVE_VIEWS:
            break
        time.sleep(0.5)
    window_start = datetime.now(UTC).replace(second=0, microsecond=0)
    store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
    enricher = build_enricher([], use_geoip2fast=False, env={})
    try:
        for events, received in (
            (backfill, window_start - timedelta(minutes=1)),
            (later, window_start),
        ):
            context = NormalizeContext("ws", "src", 0, received_at=received)
            items = [FixtureEvent(timedelta(0), e, json.dumps(e)) for e in events]
            store.insert(transform(items, context, enricher).rows)
    finally:
        enricher.close()
    rule = load_rule(KANDJI_PACK / "kandji-secret-viewed-by-new-actor.yaml", store)
    first = run_detection(store, rule, window_start - timedelta(minutes=1), window_start)
    second = run_detection(store, rule, window_start, window_start + timedelta(minutes=1))
    assert first.rows == []
    assert [row["views"] for row in second.rows] == [LIVE_VIEWS]
