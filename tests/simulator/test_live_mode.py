"""Live mode: audit events keep arriving at events_per_minute, devices check in, update their
OS and get renamed, and each change has its audit event; the same seed replays the same stream."""

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from kandji_bridge.simulator import catalog
from kandji_bridge.simulator.server import RunningSimulator
from kandji_bridge.simulator.state import MAX_CATCH_UP_EVENTS

from .helpers import all_devices, client

NOW = datetime(2025, 3, 17, 22, 29, 25, tzinfo=UTC)


def live(factory: Callable[..., RunningSimulator], **fields: object) -> RunningSimulator:
    settings = {"devices": 40, "events": 200, "history_days": 10, "rate_per_second": 0}
    return factory(**{**settings, "events_per_minute": 6000, **fields})  # 100 a second


def new_events(simulator: RunningSimulator, count: int = 200) -> list[dict]:
    return simulator.events()[count:]


def test_new_events_arrive_evenly_spaced_after_the_history(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    simulator = live(simulator_factory, now=NOW)
    time.sleep(0.5)
    arrived = new_events(simulator)
    assert len(arrived) >= 30
    times = [datetime.fromisoformat(e["occurred_at"]) for e in arrived]
    assert times[0] > NOW
    assert {(b - a).total_seconds() for a, b in pairwise(times)} == {0.01}
    with client(simulator) as http:
        newest = http.get("/api/v1/audit/events", params={"sort_by": "-occurred_at"}).json()
    assert newest["results"][0]["id"] in {e["id"] for e in simulator.events()[-5:]}


def test_the_same_seed_replays_the_same_live_events(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    first, second = live(simulator_factory, now=NOW), live(simulator_factory, now=NOW)
    time.sleep(0.4)
    assert new_events(first)[:30] == new_events(second)[:30]


def test_devices_check_in_update_their_os_and_get_renamed(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    simulator = live(simulator_factory, check_in_interval_seconds=0.3, events_per_minute=12000)
    with client(simulator) as http:
        before = {d["device_id"]: d for d in all_devices(http)}
        time.sleep(0.8)
        after = {d["device_id"]: d for d in all_devices(http)}
    for device_id, device in after.items():
        old = before[device_id]
        if old["is_missing"] or old["is_removed"]:
            assert device["last_check_in"] == old["last_check_in"]
        else:
            assert device["last_check_in"] > old["last_check_in"]
    changes = {
        (e["target_id"], e["target_component"]): e["new_state"]
        for e in new_events(simulator)
        if e["target_type"] == "device" and e["actor_type"] in ("user", "system")
    }
    renamed = [i for i in after if after[i]["device_name"] != before[i]["device_name"]]
    updated = [i for i in after if after[i]["os_version"] != before[i]["os_version"]]
    assert renamed and updated
    for device_id in renamed:
        assert changes[device_id, "device_name"]["device_name"] == after[device_id]["device_name"]
    for device_id in updated:
        device, state = after[device_id], changes[device_id, "os_version"]
        assert state["os_version"] == device["os_version"]
        assert state["supplemental_build_version"] == device["supplemental_build_version"]
        versions = [v for v, _, _ in catalog.OS_VERSIONS[device["platform"]]]
        assert versions.index(device["os_version"]) > versions.index(
            before[device_id]["os_version"]
        )


def test_late_events_land_in_the_past(simulator_factory: Callable[..., RunningSimulator]) -> None:
    simulator = live(simulator_factory, now=NOW, late_event_rate=1, late_event_max_seconds=3600)
    before = {e["id"] for e in simulator.events()}
    time.sleep(0.3)
    late = [
        datetime.fromisoformat(e["occurred_at"])
        for e in simulator.events()
        if e["id"] not in before
    ]
    assert len(late) >= 10
    assert sum(moment < NOW for moment in late) > len(late) / 2  # before the tenant's start


def test_tests_can_change_the_tenant(simulator: RunningSimulator) -> None:
    state = simulator.state
    device = next(
        d for d in simulator.devices if d.os_version != catalog.OS_VERSIONS[d.platform][-1][0]
    )
    renamed = state.rename_device(device.device_id, "Front Desk")
    updated = state.update_device_os(device.device_id)
    state.add_generated_events(5)
    events = simulator.events()
    assert renamed in events and updated in events
    assert renamed["new_state"]["device_name"] == device.device_name == "Front Desk"
    assert updated is not None and updated["new_state"]["os_version"] == device.os_version
    assert len(events) == 1200 + 7


def test_on_the_wall_clock_a_tenant_started_again_serves_the_same_events(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    """The demo's restart: the same seed and end of history, started twice, serve the same
    events with the same ids, the live ones due since the end of the history included."""
    history_end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    fields = {
        "devices": 10,
        "events": 100,
        "history_days": 30,
        "now": history_end,
        "wall_clock": True,
        "events_per_minute": 3,
    }
    first = simulator_factory(**fields).events()
    second = simulator_factory(**fields).events()
    assert [e["id"] for e in second[: len(first)]] == [e["id"] for e in first]
    live_ones = [e for e in first if datetime.fromisoformat(e["occurred_at"]) > history_end]
    assert 29 <= len(live_ones) <= 31  # ten minutes at three a minute, on the real clock


def test_after_a_long_stop_only_the_latest_live_events_are_caught_up(
    simulator_factory: Callable[..., RunningSimulator],
) -> None:
    history_end = datetime.now(UTC) - timedelta(days=30)
    simulator = simulator_factory(
        devices=5, events=10, history_days=30, now=history_end, wall_clock=True,
        events_per_minute=6,
    )  # fmt: skip
    assert len(simulator.events()) == 10 + MAX_CATCH_UP_EVENTS
