"""One simulated tenant at run time: its data, tokens, limits, faults, stats and live-mode clock.

The HTTP app and tests share this object across threads, so every method takes the lock. Tests
change the tenant through these plain methods (revoke a permission, add an event, rename a device).
"""

import random
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kandji_bridge.simulator import catalog, event_kinds
from kandji_bridge.simulator.config import SimulatorConfig, resolved_tokens
from kandji_bridge.simulator.event_kinds import Body
from kandji_bridge.simulator.events import EventLog, history_times, new_event_id
from kandji_bridge.simulator.faults import FaultPlan
from kandji_bridge.simulator.ratelimit import SlidingWindowLimiter
from kandji_bridge.simulator.scenarios import attack_events
from kandji_bridge.simulator.stats import RequestStats
from kandji_bridge.simulator.tenant import DAY_US, Device, generate_tenant
from kandji_bridge.simulator.timefmt import to_us

# Each live event is inserted into sorted arrays: a catch-up of months would take minutes.
MAX_CATCH_UP_EVENTS = 5000


class SimulatorState:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.history_end_us = to_us(config.now or datetime.now(UTC))
        self._started = time.monotonic()
        self.tenant = generate_tenant(config.seed, config.devices, self.history_end_us)
        self.events = EventLog(self.tenant, config.seed)
        rng = random.Random(f"history:{config.seed}")
        start_us = self.history_end_us - config.history_days * DAY_US
        times = history_times(rng, config.events, start_us, self.history_end_us)
        self.events.load([(us, new_event_id(rng, us)) for us in times])
        self.tokens = resolved_tokens(config)
        self.stats = RequestStats()
        self.limiter = SlidingWindowLimiter(
            [(config.rate_per_second, 1.0), (config.rate_per_hour, 3600.0)]
        )
        self.faults = FaultPlan(config.fault_rate, config.seed)
        self._live_emitted = 0
        # Scenario events after the end of the history, logged when the clock reaches them. Their
        # ids are fixed now, as if logged right after the others: live events may come before
        # them on one run and after them on a restart (all due at once), which would change an
        # id taken when they are logged, and the store would keep them twice.
        self._scenario_due: list[tuple[int, str, Body]] = []
        if config.attack_scenarios:
            moment = datetime.fromtimestamp(self.history_end_us / 1_000_000, UTC)
            later = []
            for occurred_us, body in attack_events(self.tenant, moment, config.seed):
                if occurred_us <= self.history_end_us:
                    self._log(body, occurred_us)
                else:
                    later.append((occurred_us, body))
            for index, (occurred_us, body) in enumerate(later):
                rng = random.Random(f"{config.seed}:{len(self.events) + index}")
                self._scenario_due.append((occurred_us, new_event_id(rng, occurred_us), body))

    # --- the clock ------------------------------------------------------------------------------

    def now_us(self) -> int:
        """The tenant's clock: the end of the history plus the real time elapsed since start, or
        the real clock (never before the end of the history) when config.wall_clock is set."""
        if self.config.wall_clock:
            return max(self.history_end_us, to_us(datetime.now(UTC)))
        return self.history_end_us + int((time.monotonic() - self._started) * 1_000_000)

    def catch_up(self) -> None:
        """Live mode: emit every event that is due by now, evenly spaced at events_per_minute.

        Due events get their scheduled times, which are later than every event already in the log
        (unless late_event_rate sends one into the past), so keyset paging never skips one.
        Event number N always gets the same time and id, so a tenant started again serves the
        events it served before unchanged. After a long stop only the last MAX_CATCH_UP_EVENTS
        due are emitted: the tenant was quiet before them."""
        with self.lock:
            while self._scenario_due and self._scenario_due[0][0] <= self.now_us():
                occurred_us, event_id, body = self._scenario_due.pop(0)
                self.events.add(occurred_us, event_id, body)
        rate = self.config.events_per_minute
        if rate <= 0:
            return
        with self.lock:
            spacing_us = 60_000_000 / rate
            due = int((self.now_us() - self.history_end_us) / spacing_us)
            self._live_emitted = max(self._live_emitted, due - MAX_CATCH_UP_EVENTS)
            while self._live_emitted < due:
                self._live_emitted += 1
                self._emit_live(
                    self._live_emitted, self.history_end_us + int(self._live_emitted * spacing_us)
                )

    def _emit_live(self, number: int, occurred_us: int) -> None:
        rng = random.Random(f"live:{self.config.seed}:{number}")
        if rng.random() < self.config.late_event_rate:
            occurred_us -= int(rng.random() * self.config.late_event_max_seconds * 1_000_000)
        roll = rng.random()
        device = rng.choice(self.tenant.devices) if self.tenant.devices else None
        body = None  # most live events are ordinary generated ones
        if device is not None and not device.is_removed and roll < 0.06:
            body = self._update_os(device)
        elif device is not None and not device.is_removed and roll < 0.12:
            family = device.model.name.split(" (")[0]
            body = self._rename(device, f"{family} {rng.randint(100, 999)}")
        self.events.add(occurred_us, new_event_id(rng, occurred_us), body)

    def check_in_us(self, device: Device) -> int:
        """Live mode: active devices check in every check_in_interval_seconds, each in its phase."""
        if self.config.events_per_minute <= 0 or device.is_missing or device.is_removed:
            return device.last_check_in_us
        interval_us = int(self.config.check_in_interval_seconds * 1_000_000)
        phase_us = device.index * 7_919_000_003 % interval_us
        now_us = self.now_us()
        elapsed = now_us - self.history_end_us - phase_us
        if elapsed < 0:
            return device.last_check_in_us
        return max(device.last_check_in_us, now_us - elapsed % interval_us)

    # --- changing the tenant (live mode, tests) --------------------------------------------------

    def _update_os(self, device: Device) -> Body | None:
        versions = catalog.OS_VERSIONS[device.platform]
        current = [v[0] for v in versions].index(device.os_version)
        if current + 1 == len(versions):
            return None  # already on the newest: an ordinary event instead
        previous = device.os_version
        (
            device.os_version,
            device.supplemental_build_version,
            device.supplemental_os_version_extra,
        ) = versions[current + 1]
        return event_kinds.device_os_updated(device, previous)

    def _rename(self, device: Device, name: str) -> Body:
        previous, device.device_name = device.device_name, name
        admin = self.tenant.admins[0]
        return event_kinds.device_renamed(device, previous, (admin.id, "user"), {})

    def rename_device(self, device_id: str, name: str) -> dict[str, Any]:
        """Rename a device now and log the audit event for it; returns the event."""
        with self.lock:
            return self._log(self._rename(self.tenant.devices_by_id[device_id], name))

    def update_device_os(self, device_id: str) -> dict[str, Any] | None:
        """Move a device to the next OS version and log it; None if it is on the newest already."""
        with self.lock:
            body = self._update_os(self.tenant.devices_by_id[device_id])
            return self._log(body) if body is not None else None

    def add_event(
        self,
        action: str = "update",
        target_type: str = "blueprint",
        target_id: str = "",
        target_component: str = "",
        new_state: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        actor: tuple[str, str] | None = None,
        occurred_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Add one audit event (at the tenant's now unless occurred_at is given); returns it."""
        admin = self.tenant.admins[0]
        body = Body(
            action,
            actor or (admin.id, "user"),
            target_id,
            target_type,
            target_component,
            new_state or {},
            metadata or {},
        )
        with self.lock:
            return self._log(body, to_us(occurred_at) if occurred_at else None)

    def add_malformed_event(self, **fields: Any) -> dict[str, Any]:
        """Add an event at now whose served JSON has these fields replaced (bad-input tests)."""
        with self.lock:
            event = self._log(
                Body("update", (self.tenant.admins[0].id, "user"), "", "blueprint", "", {}, {})
            )
            self.events.break_event(event["id"], fields)
            return {**event, **fields}

    def add_generated_events(self, count: int) -> None:
        """Add `count` ordinary generated events at the tenant's now (a burst, for tests)."""
        with self.lock:
            rng = random.Random(f"burst:{self.config.seed}:{len(self.events)}")
            for _ in range(count):
                now_us = self.now_us()
                self.events.add(now_us, new_event_id(rng, now_us))

    def _log(self, body: Body, occurred_us: int | None = None) -> dict[str, Any]:
        occurred_us = self.now_us() if occurred_us is None else occurred_us
        event_id = new_event_id(
            random.Random(f"{self.config.seed}:{len(self.events)}"), occurred_us
        )
        self.events.add(occurred_us, event_id, body)
        return self.events.render(occurred_us, event_id)

    def all_events(self) -> list[dict[str, Any]]:
        """Every event now in the log, in (occurred_at, id) order."""
        self.catch_up()
        with self.lock:
            return self.events.all()

    # --- tokens ---------------------------------------------------------------------------------

    def set_token(self, token: str, permissions: frozenset[str] | set[str]) -> None:
        with self.lock:
            self.tokens[token] = frozenset(permissions)

    def revoke_permission(self, token: str, permission: str) -> None:
        with self.lock:
            self.tokens[token] = self.tokens[token] - {permission}

    def grant_permission(self, token: str, permission: str) -> None:
        with self.lock:
            self.tokens[token] = self.tokens[token] | {permission}

    def delete_token(self, token: str) -> None:
        """The token stops working (401), as a revoked or expired Kandji token does."""
        with self.lock:
            self.tokens.pop(token, None)
