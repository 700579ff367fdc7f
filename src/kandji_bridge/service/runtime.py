"""What one `serve` process holds open and shares between the scheduler, the REST API and the UI."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kandji_bridge.config import Settings
from kandji_bridge.db.state import StateDB
from kandji_bridge.logs.enrich import Enricher
from kandji_bridge.logs.store import LogStore

if TYPE_CHECKING:
    from kandji_bridge.service.scheduler import Scheduler


@dataclass
class Runtime:
    # Out of repr: the settings hold the secret key.
    settings: Settings = field(repr=False)
    state: StateDB
    store: LogStore
    enricher: Enricher
    # None when the web app runs without background jobs (some tests); the UI then says so.
    scheduler: "Scheduler | None" = None
