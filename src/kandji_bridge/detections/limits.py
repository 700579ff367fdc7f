"""What a detection run may take, and which matches are only stored.

A first sync backfills a year of history, and every event of it passes through the current
window: matches on events older than `signal_age_hours` are stored as signals and not sent, so
nobody is paged for last spring. A rule's SQL runs at most `run_seconds` (the engine's
max_execution_time); a heavier one is stopped, named, and its window runs again on the next round.
"""

from dataclasses import dataclass
from datetime import timedelta

SIGNAL_AGE_HOURS = 24
RUN_SECONDS = 60

ENV_SIGNAL_AGE_HOURS = "KANDJI_BRIDGE_SIGNAL_AGE_HOURS"
ENV_DETECTION_SECONDS = "KANDJI_BRIDGE_DETECTION_SECONDS"


@dataclass(frozen=True)
class DetectionLimits:
    signal_age_hours: int = SIGNAL_AGE_HOURS
    run_seconds: int = RUN_SECONDS

    @property
    def signal_age(self) -> timedelta:
        return timedelta(hours=self.signal_age_hours)

    @property
    def signal_age_text(self) -> str:
        """The age as a person reads it: `24 h`, `7 days`."""
        hours = self.signal_age_hours
        if hours % 24 == 0 and hours > 24:
            return f"{hours // 24} days"
        return f"{hours} h"
