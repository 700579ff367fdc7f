"""The record of each sync run: start, end, counts, errors, and the API requests it used."""

from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select, update

from kandji_bridge.db.models import Mapping, SyncRun, utcnow
from kandji_bridge.db.state import StateDB

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
INTERRUPTED = (
    "Interrupted: the process running this sync stopped before it finished (killed or crashed); "
    "each batch it wrote is complete, and the next sync did what was left."
)
MAX_ERRORS_KEPT = 1000  # a run with 100,000 skipped devices keeps the first ones, and the count


@dataclass(frozen=True)
class RunInfo:
    id: str
    mapping_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    created: int
    updated: int
    unchanged: int
    skipped: int
    conflicts: int
    vanished: int
    api_requests: int
    details_requests: int
    errors: list[str]


def start_run(state: StateDB, mapping_id: str) -> str:
    run = SyncRun(mapping_id=mapping_id, status=RUNNING)
    with state.session() as session:
        session.add(run)
    return run.id


def finish_run(state: StateDB, run_id: str, status: str, errors: list[str], **counts: int) -> None:
    """Close the run; `counts` are the SyncRun count columns (created=..., api_requests=...)."""
    kept = errors[:MAX_ERRORS_KEPT]
    if len(errors) > len(kept):
        kept.append(f"... and {len(errors) - len(kept)} more")
    with state.session() as session:
        session.execute(
            update(SyncRun)
            .where(SyncRun.id == run_id)
            .values(
                status=status, finished_at=utcnow(), errors=orjson.dumps(kept).decode(), **counts
            )
        )


def close_interrupted(state: StateDB, mapping_id: str, since: datetime) -> int:
    """Mark the mapping's runs still `running` that started at or after `since` as failed: their
    process died mid-run (the caller knows, from the job's lease), so none will ever finish them.
    How many were closed."""
    with state.session() as session:
        closed = session.execute(
            update(SyncRun)
            .where(
                SyncRun.mapping_id == mapping_id,
                SyncRun.status == RUNNING,
                SyncRun.started_at >= since,
            )
            .values(
                status=FAILED, finished_at=utcnow(), errors=orjson.dumps([INTERRUPTED]).decode()
            )
        )
        return closed.rowcount


def list_runs(state: StateDB, mapping_id: str, limit: int = 20) -> list[RunInfo]:
    """The mapping's most recent runs, newest first."""
    with state.session() as session:
        runs = session.scalars(
            select(SyncRun)
            .where(SyncRun.mapping_id == mapping_id)
            .order_by(SyncRun.started_at.desc())
            .limit(limit)
        ).all()
        return [run_info(run) for run in runs]


def run_mappings(state: StateDB, run_ids: set[str]) -> dict[str, str]:
    """run id -> the name of the mapping that ran it, for the runs whose mapping still exists."""
    if not run_ids:
        return {}
    with state.session() as session:
        return dict(
            session.execute(
                select(SyncRun.id, Mapping.name)
                .join(Mapping, Mapping.id == SyncRun.mapping_id)
                .where(SyncRun.id.in_(run_ids))
            ).all()
        )


def run_info(run: SyncRun) -> RunInfo:
    return RunInfo(
        id=run.id,
        mapping_id=run.mapping_id,
        started_at=run.started_at,
        finished_at=run.finished_at,
        status=run.status,
        created=run.created,
        updated=run.updated,
        unchanged=run.unchanged,
        skipped=run.skipped,
        conflicts=run.conflicts,
        vanished=run.vanished,
        api_requests=run.api_requests,
        details_requests=run.details_requests,
        errors=orjson.loads(run.errors),
    )
