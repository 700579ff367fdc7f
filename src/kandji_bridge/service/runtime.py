"""What one `serve` process holds open and shares between the scheduler, the REST API and the UI."""

import threading
from dataclasses import dataclass, field

from kandji_bridge.config import Settings
from kandji_bridge.db.state import StateDB
from kandji_bridge.jobs.counters import Counters
from kandji_bridge.jobs.runner import InlineRunner, JobRunner
from kandji_bridge.logs.enrich import Enricher
from kandji_bridge.logs.store import LogStore
from kandji_bridge.operations.detections import LoadedRules
from kandji_bridge.operations.jobs import run_job


@dataclass
class Runtime:
    # Out of repr: the settings hold the secret key.
    settings: Settings = field(repr=False)
    state: StateDB
    store: LogStore
    enricher: Enricher
    # Who runs jobs: an InlineRunner (a job runs when triggered, in the caller) until `serve`
    # puts its scheduler here.
    jobs: JobRunner = field(init=False, repr=False)
    # The enabled detections as the detections job loaded them, kept between its runs.
    loaded_rules: LoadedRules = field(default_factory=LoadedRules, repr=False)

    def __post_init__(self) -> None:
        self.jobs = InlineRunner(self.state, self.run_job)

    def run_job(self, job: str, stop: threading.Event, counters: Counters) -> bool:
        """Run `job` once on this runtime's state DB, log store and enricher (for a runner)."""
        return run_job(
            self.settings,
            self.state,
            self.store,
            self.enricher,
            job,
            stop=stop,
            counters=counters,
            loaded_rules=self.loaded_rules,
        )
