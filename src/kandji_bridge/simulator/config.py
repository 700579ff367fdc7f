"""What a simulated tenant looks like and does: sizes, seed, tokens, limits, live mode, faults."""

import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from kandji_bridge.kandji.permissions import BY_KEY

PERMISSION_KEYS = frozenset(BY_KEY)


@dataclass
class SimulatorConfig:
    devices: int = 50
    events: int = 2000  # audit events in the history
    history_days: int = 365
    seed: int = 1
    # Token value -> its permission keys ("audit", "devices", "details", "admins"). Empty: one
    # token with all of them, derived from the seed.
    tokens: dict[str, frozenset[str]] = field(default_factory=dict)
    events_per_minute: float = 0  # live mode: new audit events per minute, 0 = off
    # Requests allowed in any 1-second / 3,600-second window, for the whole tenant; 0 = no limit.
    rate_per_second: float = 50
    rate_per_hour: float = 10000
    fault_rate: float = 0  # fraction of API requests that fail in one of the FAULT_KINDS ways
    now: datetime | None = None  # end of the generated history; None = the real clock (UTC)
    # The tenant's clock after `now`: False, `now` plus the time since start (tests fix `now`
    # and still see time pass); True, the real UTC clock, so a tenant started again later with
    # the same seed and `now` is the same tenant, with the live events of the time in between.
    wall_clock: bool = False
    # Live mode: this fraction of new events arrive late, with occurred_at up to
    # late_event_max_seconds in the past, as events delivered out of order do on a real tenant.
    late_event_rate: float = 0
    late_event_max_seconds: float = 300
    # Live mode: each device that is neither missing nor removed checks in this often.
    check_in_interval_seconds: float = 900
    # When the tenant starts, log the attack scenarios of scenarios.py (the demo's alerts).
    attack_scenarios: bool = False
    slow_response_seconds: float = 3.0  # how long a "slow" fault stalls before answering

    def __post_init__(self) -> None:
        """Refuse settings that cannot make a tenant, in one sentence the CLI can show."""
        if self.devices < 0 or self.events < 0:
            raise ValueError("The numbers of devices and events cannot be negative.")
        if self.events and self.history_days < 1:
            raise ValueError("history_days must be at least 1 for a tenant with audit events.")
        for name in ("fault_rate", "late_event_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1.")
        if self.check_in_interval_seconds <= 0:
            raise ValueError("check_in_interval_seconds must be more than 0.")


def resolved_tokens(config: SimulatorConfig) -> dict[str, frozenset[str]]:
    """The configured tokens, or one all-powerful token derived from the seed (same seed, same
    token)."""
    if config.tokens:
        return {value: frozenset(perms) for value, perms in config.tokens.items()}
    value = str(uuid.UUID(int=random.Random(f"token:{config.seed}").getrandbits(128), version=4))
    return {value: PERMISSION_KEYS}


def parse_token_option(value: str) -> tuple[str, frozenset[str]]:
    """`VALUE[:PERMS]` from `simulate --token`; PERMS is a comma list of permission keys."""
    token, sep, perms_text = value.partition(":")
    if not token:
        raise ValueError(
            f"Token option {value!r} has no token value; use VALUE[:{','.join(BY_KEY)}]."
        )
    if not sep:
        return token, PERMISSION_KEYS
    perms = frozenset(part.strip() for part in perms_text.split(",") if part.strip())
    unknown = sorted(perms - PERMISSION_KEYS)
    if unknown:
        raise ValueError(
            f"Unknown token permission {unknown[0]!r}; use a comma list of {', '.join(BY_KEY)}."
        )
    return token, perms
