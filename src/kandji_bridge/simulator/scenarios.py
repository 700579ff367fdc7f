"""Attack scenarios a live tenant can play, so the detection pack has something to find.

1. A new API token with the right to erase and delete devices is created, and it deletes a burst
   of devices within the minute (the pack's sensitive-permission, device-deleted, changed-by-token
   and delete-burst rules).
2. FileVault keys are viewed at night (the last 02:30 UTC) by an actor never seen before (the
   outside-business-hours rule), and again by another newcomer just after the tenant starts (the
   secret-viewed-by-new-actor rule).

They happen around the end of the generated history, at times and with ids fixed by the seed and
that end: a tenant started again (the demo's) serves the same events, not new attacks. The
newcomer's views come on the first half minute at least LIVE_DELAY after that end. "New" means
unlike what was received before the window, and the backfill is that baseline, so the views must
be received after it and in a later detection window: LIVE_DELAY leaves a demo the time to start
and make its first pass (the backfill) before them, and a half minute is where every window of
30 s or a whole number of minutes ends, so the backfill's window ends before the views arrive.
"""

import random
from datetime import UTC, datetime, timedelta

from kandji_bridge.simulator.event_kinds import Body
from kandji_bridge.simulator.tenant import Device, Tenant, new_uuid
from kandji_bridge.simulator.timefmt import to_us

DELETES = 12  # above the delete-burst rule's threshold of 10
NIGHT_VIEWS = 3
LIVE_VIEWS = 2
LIVE_DELAY = timedelta(seconds=20)
LIVE_ALIGN_SECONDS = 30
SCENARIO_EVENTS = 1 + DELETES + NIGHT_VIEWS + LIVE_VIEWS
_ERASE_PERMISSIONS = [
    {"path": "/api/v1/devices/{device_id}/action/erase", "http_method": "POST"},
    {"path": "/api/v1/devices/{device_id}", "http_method": "DELETE"},
    {"path": "/api/v1/devices", "http_method": "GET"},
]


def attack_events(tenant: Tenant, now: datetime, seed: int) -> list[tuple[int, Body]]:
    """Both scenarios (SCENARIO_EVENTS events), the token's ending just before `now` and the
    newcomer's views after it (the simulator logs those when its clock reaches them); devices
    repeat only in a tenant of fewer than DELETES + NIGHT_VIEWS + LIVE_VIEWS; none without."""
    rng = random.Random(f"scenarios:{seed}:{now.isoformat()}")
    devices = [d for d in tenant.devices if not d.is_removed]
    if not devices:
        return []
    rng.shuffle(devices)
    devices = [devices[i % len(devices)] for i in range(DELETES + NIGHT_VIEWS + LIVE_VIEWS)]
    admin = tenant.admins[0]
    token_id = new_uuid(rng)
    start = to_us(now) - 60_000_000  # all in the past: a page never holds a future event
    events = [
        (
            start,
            Body(
                "create",
                (admin.id, "user"),
                token_id,
                "api_token",
                "",
                {"description": None, "permissions": _ERASE_PERMISSIONS, "label": "cleanup"},
                {},
            ),
        )
    ]
    for index, device in enumerate(devices[:DELETES]):
        events.append(
            (
                start + (index + 1) * 2_000_000,
                Body(
                    "delete",
                    (token_id, "api_token"),
                    device.device_id,
                    "device",
                    "",
                    {"device_name": device.device_name, "serial_number": device.serial_number},
                    {},
                ),
            )
        )
    night = now.astimezone(UTC).replace(hour=2, minute=30, second=0, microsecond=0)
    if night > now:
        night -= timedelta(days=1)
    stranger = new_uuid(rng)
    for index, device in enumerate(devices[DELETES : DELETES + NIGHT_VIEWS]):
        events.append((to_us(night) + index * 40_000_000, _key_view(stranger, device)))
    newcomer = new_uuid(rng)
    views_at = _next_boundary(now + LIVE_DELAY, LIVE_ALIGN_SECONDS)
    for index, device in enumerate(devices[DELETES + NIGHT_VIEWS :]):
        events.append((to_us(views_at) + index * 1_000_000, _key_view(newcomer, device)))
    return events


def _next_boundary(moment: datetime, seconds: int) -> datetime:
    """The first whole multiple of `seconds` since the epoch at or after `moment`."""
    boundaries = -(-to_us(moment) // (seconds * 1_000_000))  # rounded up
    return datetime.fromtimestamp(boundaries * seconds, UTC)


def _key_view(actor_id: str, device: Device) -> Body:
    return Body(
        "view",
        (actor_id, "user"),
        device.device_id,
        "device",
        "filevault_key",
        {"device_name": device.device_name, "serial_number": device.serial_number},
        {},
    )
