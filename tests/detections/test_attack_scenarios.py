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
from kandji_bridge.simulator.scenarios import (
    LIVE_DELAY,
    LIVE_VIEWS,
    SCENARIO_EVENTS,
    attack_events,
)
from kandji_bridge.simulator.state import SimulatorState
from kandji_bridge.simulator.timefmt import from_us, iso_z, to_us

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
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    tenant = SimulatorState(
        SimulatorConfig(
            devices=40,
            events=400,
            history_days=30,
            seed=5,
            attack_scenarios=True,
            now=end,
            wall_clock=True,  # started two minutes ago: the newcomer's views are due
        )
    )
    events = tenant.all_events()
    cut = iso_z(to_us(end))
    backfill = [e for e in events if e["occurred_at"] <= cut]
    later = [e for e in events if e["occurred_at"] > cut]
    assert len(later) == LIVE_VIEWS
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


@pytest.mark.parametrize("second", [0.0, 0.5, 9.0, 10.0, 10.5, 29.9, 59.0])
def test_the_newcomer_comes_after_a_demo_start_in_a_later_half_minute_window(
    second: float,
) -> None:
    """The demo polls every 10 s and runs the pack every 30 s. Its backfill, made within
    LIVE_DELAY of the tenant's start, must not hold the newcomer's views, and the views must
    land in a later 30-second window than it (they are new only against what came before their
    window), soon enough for the alert to show within two minutes of the start."""
    end = datetime(2026, 3, 4, 9, 17, tzinfo=UTC) + timedelta(seconds=second)
    views = [
        (occurred_us, body)
        for occurred_us, body in attack_events(
            SimulatorState(SimulatorConfig(devices=40, events=0, seed=5, now=end)).tenant,
            end,
            seed=5,
        )
        if occurred_us > to_us(end)
    ]
    assert len(views) == LIVE_VIEWS
    first = from_us(views[0][0])
    assert first >= end + LIVE_DELAY  # the backfill's time to be made
    assert first.timestamp() % 30 == 0  # a window's start: the backfill's window ended before
    assert first - end < LIVE_DELAY + timedelta(seconds=30)


def test_a_tenant_started_again_serves_the_newcomers_views_with_the_same_ids() -> None:
    """Live events come before the newcomer's views. A tenant that ran through that time logs
    them first; one started again later (the demo's, after a stop) logs everything due at once.
    The views keep their ids either way, so the demo's store holds each once."""
    # The views come within the next 31 s, on whole seconds, where no live event falls.
    end = (datetime.now(UTC) - timedelta(seconds=19)).replace(microsecond=123_457)
    first_view = -(-to_us(end + LIVE_DELAY) // 30_000_000) * 30_000_000
    view_times = {iso_z(first_view + index * 1_000_000) for index in range(LIVE_VIEWS)}
    config = SimulatorConfig(
        devices=40,
        events=200,
        history_days=10,
        seed=3,
        now=end,
        wall_clock=True,
        events_per_minute=600,
        attack_scenarios=True,
    )

    def views(state: SimulatorState) -> dict[str, str]:
        return {
            e["id"]: e["occurred_at"] for e in state.all_events() if e["occurred_at"] in view_times
        }

    running = SimulatorState(config)
    assert views(running) == {}
    live_first = len(running.all_events())
    for _ in range(80):  # until the tenant's clock reaches them
        if len(views(running)) == LIVE_VIEWS:
            break
        time.sleep(0.5)
    assert len(views(running)) == LIVE_VIEWS
    assert live_first > 200 + SCENARIO_EVENTS - LIVE_VIEWS  # live events were logged first
    assert views(SimulatorState(config)) == views(running)
