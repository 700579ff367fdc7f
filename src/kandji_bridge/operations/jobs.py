"""What a job does when it runs, whichever runner runs it (serve's scheduler, or one run now).

A source's job is one collection pass (`polling.poll_source`); a mapping's job is one device
import (`inventory.sync.sync_mapping`). The runner holds the job's lease and records its status;
this only runs the job and counts what it did.
"""

import asyncio
import threading
from datetime import UTC, datetime

from sqlalchemy import select

from kandji_bridge.config import Settings
from kandji_bridge.db.models import Mapping, Source
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.inventory.sync import sync_mapping
from kandji_bridge.jobs import status as jobs
from kandji_bridge.jobs.counters import Counters, Tracker
from kandji_bridge.kandji.client import ClientStats
from kandji_bridge.logs.enrich import Enricher
from kandji_bridge.logs.store import LogStore
from kandji_bridge.operations.alerts import deliver_alerts
from kandji_bridge.operations.detections import LoadedRules, run_due_detections, run_due_windows
from kandji_bridge.operations.polling import poll_source


def run_job(
    settings: Settings,
    state: StateDB,
    store: LogStore,
    enricher: Enricher,
    job: str,
    *,
    stop: threading.Event,
    counters: Counters,
    loaded_rules: LoadedRules | None = None,
) -> bool:
    """Run `job` ("source:ID", "mapping:ID", "detections:enabled", "detection:NAME",
    "outbox:alerts") once; False if `stop` ended it before it was done. A failure raises its
    BridgeError (one sentence). `loaded_rules` keeps the detections job's rules between runs."""
    kind, target = jobs.parse_job(job)
    if kind == jobs.SOURCE:
        return _poll(settings, state, store, enricher, _source_name(state, target), stop, counters)
    if kind == jobs.DETECTIONS:
        # Each rule's failure is its own status (the Detections page shows it), not the job's.
        run_due_detections(settings, state, store, datetime.now(UTC), loaded_rules, stop=stop)
        return not stop.is_set()
    if kind == jobs.DETECTION:
        run_due_windows(settings, state, store, target, datetime.now(UTC))
        return True
    if kind == jobs.OUTBOX:
        _deliver(state)
        return True
    _sync(state, _mapping_name(state, target), counters)
    return True


def _poll(
    settings: Settings,
    state: StateDB,
    store: LogStore,
    enricher: Enricher,
    name: str,
    stop: threading.Event,
    counters: Counters,
) -> bool:
    tracker = Tracker(counters, name)
    result = poll_source(
        settings,
        state,
        store,
        enricher,
        name,
        on_page=tracker.page,
        on_requests=tracker.client,
        stop=stop,
    )
    if result.error:
        raise BridgeError(result.error)
    return not result.stopped


def _sync(state: StateDB, name: str, counters: Counters) -> None:
    """One device import. It runs to its end, whatever a stop says: it is short next to a
    backfill, and each of its batches is a transaction of its own anyway."""
    with state.session() as session:
        source_name = session.scalar(
            select(Source.name)
            .join(Mapping, Mapping.source_id == Source.id)
            .where(Mapping.name == name)
        )
    stats = ClientStats()
    tracker = Tracker(counters, source_name or name)
    try:
        asyncio.run(
            sync_mapping(state, name, progress=lambda *_: tracker.client(stats), stats=stats)
        )
    finally:
        tracker.client(stats)


def _deliver(state: StateDB) -> None:
    """Send the alerts due; a delivery that failed is retried by the outbox itself, so this job
    reports the first failure of the round without failing the others."""
    report = deliver_alerts(state)
    if report.errors:
        raise BridgeError(report.errors[0])


def _source_name(state: StateDB, source_id: str) -> str:
    with state.session() as session:
        name = session.scalar(select(Source.name).where(Source.id == source_id))
    if name is None:
        raise NotFound("The source of this job was removed; nothing to poll.")
    return name


def _mapping_name(state: StateDB, mapping_id: str) -> str:
    with state.session() as session:
        name = session.scalar(select(Mapping.name).where(Mapping.id == mapping_id))
    if name is None:
        raise NotFound("The mapping of this job was removed; nothing to sync.")
    return name
