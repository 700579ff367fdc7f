"""Poll a source: one collection pass of its audit events from Kandji into the log store.

`poll_source` is the one way a pass runs: `logs sync` and `logs resync` call it through
`sync_source` (which holds the source's job as serve's scheduler does), and the scheduler and the
web's Poll now reach it through the job runner (`operations/jobs.py`). What the caller shows or
counts while it runs comes in as callbacks.
"""

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime

from kandji_bridge import source_registry
from kandji_bridge.config import Settings
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import BridgeError
from kandji_bridge.jobs import exclusive
from kandji_bridge.jobs import status as jobs
from kandji_bridge.kandji.client import ClientStats, KandjiClient
from kandji_bridge.kandji.urls import normalize_api_url
from kandji_bridge.logs import actors
from kandji_bridge.logs.collector import CollectorSource, PassResult, collect, source_lock
from kandji_bridge.logs.enrich import Enricher
from kandji_bridge.logs.store import LogStore

# Called after each stored page with the pass so far and the client's request counts.
OnPage = Callable[[PassResult, ClientStats], None]
# Called once the client is done, with its final request counts (the pass may have failed).
OnRequests = Callable[[ClientStats], None]


class PassFailed(BridgeError):
    """A pass ended early; `result` is what it did before (stored events stay stored)."""

    def __init__(self, message: str, result: PassResult, in_web: str | None = None) -> None:
        super().__init__(message, in_web)
        self.result = result


def poll_source(
    settings: Settings,
    state: StateDB,
    store: LogStore,
    enricher: Enricher,
    name: str,
    *,
    backfill_days: int | None = None,
    window: tuple[datetime, datetime] | None = None,
    on_page: OnPage | None = None,
    on_requests: OnRequests | None = None,
    stop: threading.Event | None = None,
) -> PassResult:
    """One pass for source `name`, under its lock (SourceBusy if this machine already collects
    it). A Kandji error ends the pass with `result.error` set; `stop` ends it after the page in
    hand (`result.stopped`). `window` collects that period again (`logs resync`)."""
    info = source_registry.get_source(state, name)
    token = source_registry.get_source_token(state, info.name)
    api_url = normalize_api_url(info.api_url, settings.allowed_hosts)
    source = CollectorSource(info.id, info.name, info.retention_days)

    async def run(reread: bool) -> PassResult:
        async with KandjiClient(api_url, token, limits=settings.kandji_limits) as client:
            try:
                result = await collect(
                    client,
                    store,
                    source,
                    state.workspace_id,
                    enricher=enricher,
                    backfill_days=backfill_days,
                    reread=reread,
                    on_page=(lambda result: on_page(result, client.stats)) if on_page else None,
                    stop=stop,
                    window=window,
                )
                if not result.error:  # names are a bonus: refresh_admins never raises for Kandji
                    await actors.refresh_admins(state, info.id, client)
                return result
            finally:
                if on_requests is not None:
                    on_requests(client.stats)

    with source_lock(settings.home, source) as hold:
        # A resync asks for its own period: the daily re-read waits for the next plain pass.
        result = asyncio.run(run(hold.reread_due and window is None))
        hold.record(result)
    return result


def sync_source(
    settings: Settings,
    state: StateDB,
    store: LogStore,
    enricher: Enricher,
    name: str,
    *,
    backfill_days: int | None = None,
    window: tuple[datetime, datetime] | None = None,
    on_page: OnPage | None = None,
) -> PassResult:
    """`logs sync` (window None) or `logs resync`: one pass while holding the source's job, as
    serve holds it, recorded in the job's status. PassFailed if the pass ended early."""
    info = source_registry.get_source(state, name)
    if window is not None:  # before the job is claimed: a refusal is no failed run
        check_resync_window(store, info, window)
    # With a shared state DB and a ClickHouse server, serve and this command may run on two
    # machines, where the home's file lock cannot see: the job's lease can.
    busy = (
        f"Source {info.name} is being collected by another process (`serve` or another "
        "`logs sync`); wait for it to finish and try again"
    )
    busy_in_web = (
        f"Source {info.name} is being collected right now (a scheduled poll, or a collection "
        "started elsewhere); try again when it ends"
    )
    with exclusive.claimed(state, jobs.source_job(info.id), busy, busy_in_web) as claim:
        result = poll_source(
            settings,
            state,
            store,
            enricher,
            info.name,
            backfill_days=backfill_days,
            window=window,
            on_page=on_page,
            stop=claim.lost,
        )
        if result.error:
            again = f"`kandji-bridge logs sync {info.name}`" if window is None else "it"
            stopped = f"The pass for source {info.name} stopped early: {result.error} What was "
            raise PassFailed(
                f"{stopped}stored is kept; run {again} again to resume.",
                result,
                in_web=f"{stopped}stored is kept; start it again from the source's page to resume.",
            )
        if result.stopped:
            raise PassFailed(
                f"The pass for source {info.name} stopped early: another process took the "
                "source over (this one could not renew its hold on it in time). What was "
                "stored is kept, and that process collects the rest.",
                result,
            )
    return result


def check_resync_window(
    store: LogStore, info: source_registry.SourceInfo, window: tuple[datetime, datetime]
) -> None:
    """A resync must not start after the stored history ends: the checkpoint would jump past the
    events in between, and no later `logs sync` would collect them. Checked before the job is
    claimed: a sync running meanwhile only moves the stored end later, so the check still holds."""
    checkpoint = store.latest_checkpoint(info.id)
    if checkpoint is None:
        nothing = f"Nothing is stored for source {info.name} yet; "
        raise BridgeError(
            f"{nothing}run `kandji-bridge logs sync {info.name}` first (its first run backfills "
            "the history Kandji keeps).",
            in_web=f"{nothing}use Poll now first (its first pass backfills the history Kandji "
            "keeps).",
        )
    if window[0] > checkpoint.event_time:
        stored = f"Source {info.name} is stored up to {checkpoint.event_time:%Y-%m-%d %H:%M:%S} UTC"
        raise BridgeError(
            f"{stored}, before --from; run `kandji-bridge logs sync {info.name}` to collect what "
            "is newer.",
            in_web=f"{stored}, before the period's start; use Poll now to collect what is newer.",
        )
