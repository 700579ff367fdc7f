"""The `detections` table in the log store: what each run of each rule matched.

Modelled on RunReveal's detections data model (its `detectionName`, `recordsReturned`, `runTime`,
`query`, `params`, `columnNames`, `results`, `severity`, `actor`, `resources`, `srcIP`, `dstIP`,
`notificationNames`, `categories`, `mitreAttacks`), plus what running on windows of `receivedAt`
needs: the window (`windowFrom`, `windowTo`), the risk score, the ids of the matched kandji_logs
rows (`matchedIds`), whether the rule returned more rows than a run keeps (`truncated`), and
`kind`: an `alert` is sent to the rule's notification channels, a `signal` is only stored.

A run writes at most two rows: one alert for the matches on recent events, one signal for the
matches on events older than `signal_age` (a first backfill brings a year of history through the
windows; nobody should be paged for it) or for every match of a rule without notification
channels. `alerts` and `signals` are views of the table, as in RunReveal.

Each row's id is a hash of the workspace, rule, window and kind, so running a window again after
a crash writes nothing new and sends nothing twice (the outbox is keyed on it). The table is
created and written through the store's public `query`, with every value a bound parameter.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kandji_bridge.detections.limits import SIGNAL_AGE_HOURS
from kandji_bridge.detections.outbox import Alert
from kandji_bridge.detections.rules import Detection
from kandji_bridge.detections.run import Matches
from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.schema import (
    COLUMN_NAMES,
    LOCAL_SUFFIX,
    REPLICA_PATH,
    distributed_ddl,
    quote_name,
)
from kandji_bridge.logs.store import LogStore, LogStoreError

DETECTIONS_TABLE = "detections"
SIGNAL_AGE = timedelta(hours=SIGNAL_AGE_HOURS)  # the default; settings.detection_limits
RESULTS_KEPT = 100  # rows kept in `results`, as RunReveal keeps
RESOURCES_KEPT = 1000  # distinct resources kept of a run's matches
# What a match's compact record keeps of kandji_logs' columns; a rule's own columns are all kept.
COMPACT_COLUMNS = (
    "id",
    "receivedAt",
    "eventTime",
    "eventName",
    "kandjiEventId",
    "action",
    "actorId",
    "actorType",
    "targetType",
    "targetId",
    "targetComponent",
    "srcIP",
    "srcASCountryCode",
    "readOnly",
)
_DROPPED = frozenset(COLUMN_NAMES) - frozenset(COMPACT_COLUMNS)
# What a stored record never reads of a match: a scheduled run leaves these columns out of the
# rows it asks for (the rule's SQL is unchanged), so the engine does not read rawLog and the other
# wide columns. The first match's actor and dstIP, and every match's resources, are kept.
UNUSED_COLUMNS = _DROPPED - {"actor", "dstIP", "resources"}


def _detections_table(name: str, engine: str, on_cluster: str = "") -> str:
    return f"""CREATE TABLE IF NOT EXISTS {name}{on_cluster} (
    `id` String,
    `scheduledRunID` String,
    `workspaceID` String,
    `detectionID` String,
    `detectionName` String,
    `displayName` String,
    `kind` LowCardinality(String),
    `severity` LowCardinality(String),
    `riskScore` UInt8,
    `windowFrom` DateTime,
    `windowTo` DateTime,
    `recordsReturned` UInt32,
    `truncated` Bool,
    `runTime` Int64,
    `query` String,
    `params` Map(String, String),
    `columnNames` Array(String),
    `results` String,
    `matchedIds` Array(String),
    `actor` Map(String, String),
    `resources` Array(String),
    `srcIP` String,
    `dstIP` String,
    `notificationNames` Array(String),
    `categories` Array(String),
    `mitreAttacks` Array(LowCardinality(String)),
    `createdAt` DateTime
)
ENGINE = {engine}
PARTITION BY toYYYYMM(windowFrom)
ORDER BY (detectionName, windowFrom, id)"""


DETECTIONS_DDL = _detections_table(DETECTIONS_TABLE, "ReplacingMergeTree")


def _views(table: str, database: str = "", on_cluster: str = "") -> tuple[str, ...]:
    """`alerts` and `signals`, the table's rows of each kind, as in RunReveal."""
    return tuple(
        f"CREATE VIEW IF NOT EXISTS {database}{view}{on_cluster} AS "  # noqa: S608 (our names)
        f"SELECT * FROM {table} WHERE kind = '{kind}'"
        for view, kind in (("alerts", "alert"), ("signals", "signal"))
    )


VIEWS_DDL = _views(DETECTIONS_TABLE)
_INSERT = f"""INSERT INTO {DETECTIONS_TABLE} SELECT
    {{id:String}}, {{scheduledRunID:String}}, {{workspaceID:String}}, {{detectionID:String}},
    {{detectionName:String}}, {{displayName:String}}, {{kind:String}}, {{severity:String}},
    {{riskScore:UInt8}}, {{windowFrom:DateTime}}, {{windowTo:DateTime}},
    {{recordsReturned:UInt32}}, {{truncated:Bool}}, {{runTime:Int64}}, {{query:String}},
    JSONExtract({{params:String}}, 'Map(String, String)'),
    JSONExtract({{columnNames:String}}, 'Array(String)'), {{results:String}},
    JSONExtract({{matchedIds:String}}, 'Array(String)'),
    JSONExtract({{actor:String}}, 'Map(String, String)'),
    JSONExtract({{resources:String}}, 'Array(String)'), {{srcIP:String}}, {{dstIP:String}},
    JSONExtract({{notificationNames:String}}, 'Array(String)'),
    JSONExtract({{categories:String}}, 'Array(String)'),
    JSONExtract({{mitreAttacks:String}}, 'Array(String)'), {{createdAt:DateTime}}"""


class DetectionStoreError(BridgeError):
    """The detections table could not be created or written; the sentence says what to do."""


@dataclass(frozen=True)
class DetectionRecord:
    """One row of the detections table."""

    id: str
    kind: str  # "alert" or "signal"
    detection: Detection
    window_from: datetime
    window_to: datetime
    rows: list[dict[str, Any]]  # the matches of this kind, as the rule returned them
    columns: list[str]
    truncated: bool
    run_time_ns: int
    created_at: datetime
    workspace_id: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    scheduled_run_id: str = ""

    @property
    def matched_ids(self) -> list[str]:
        return [str(row["id"]) for row in self.rows if row.get("id")]

    def compact_results(self) -> list[dict[str, Any]]:
        """The first RESULTS_KEPT matches without the bulky columns (rawLog, newState, ...)."""
        return [
            {key: value for key, value in row.items() if key not in _DROPPED}
            for row in self.rows[:RESULTS_KEPT]
        ]

    def alert(self) -> Alert:
        """What the outbox sends for this record."""
        return Alert(
            id=self.id,
            detection=self.detection.name,
            display_name=self.detection.display_name,
            description=self.detection.description,
            severity=self.detection.severity,
            risk_score=self.detection.risk_score,
            window_from=self.window_from,
            window_to=self.window_to,
            match_count=len(self.rows),
            matches=self.compact_results(),
            created_at=self.created_at,
            categories=self.detection.categories,
            mitre_attacks=self.detection.mitre_attacks,
        )


def detections_ddl(cluster: str | None = None, database: str = "default") -> tuple[str, ...]:
    """The statements that make the detections table and its views. On a cluster they are made
    ON CLUSTER as kandji_logs is (schema.cluster_ddl): a Replicated `detections_local` on every
    node, the Distributed `detections` over them that every read and insert names, sharded by the
    row's id (a window run again lands on the shard holding its row, where ReplacingMergeTree
    folds the two), and the views on every node over the Distributed table."""
    if not cluster:
        return (DETECTIONS_DDL, *VIEWS_DDL)
    on = f" ON CLUSTER {quote_name(cluster)}"
    db = quote_name(database)
    local = f"{db}.{DETECTIONS_TABLE}{LOCAL_SUFFIX}"
    return (
        _detections_table(local, f"ReplicatedReplacingMergeTree({REPLICA_PATH})", on),
        distributed_ddl(cluster, database, DETECTIONS_TABLE, "id"),
        *_views(f"{db}.{DETECTIONS_TABLE}", f"{db}.", on),
    )


def ensure_detections_table(store: LogStore) -> None:
    """Make the detections table and its views when one is missing. They are looked up first: on
    a cluster each statement is a distributed DDL task that waits for every node, too much for
    every tick of the detections job, and one node down would hold the detections back."""
    names = [DETECTIONS_TABLE, "alerts", "signals"]
    if store.cluster:
        names.append(f"{DETECTIONS_TABLE}{LOCAL_SUFFIX}")
    listed = ", ".join(f"'{name}'" for name in names)
    try:
        present = store.query(
            "SELECT count() FROM system.tables "  # noqa: S608 (our names)
            f"WHERE database = currentDatabase() AND name IN ({listed})"
        )
        if int(present.rows[0][0]) == len(names):
            return
        for statement in detections_ddl(store.cluster, store.database):
            store.query(statement, read_only=False)
    except LogStoreError as exc:
        raise DetectionStoreError(
            f"Cannot create the detections table in the log store: {exc}"
        ) from None


def split_matches(
    detection: Detection,
    matches: Matches,
    *,
    now: datetime,
    workspace_id: str,
    run_time_ns: int = 0,
    parameters: Mapping[str, str] | None = None,
    signal_age: timedelta = SIGNAL_AGE,
    scheduled_run_id: str = "",
) -> list[DetectionRecord]:
    """The records of one run: an alert for matches on events newer than `now - signal_age`
    (a row without an `eventTime` counts as new), a signal for the others; a rule without
    notification channels gives only signals. None when it matched nothing."""
    cutoff = now - signal_age
    fresh: list[dict[str, Any]] = []
    old: list[dict[str, Any]] = []
    for row in matches.rows:
        moment = _event_time(row)
        (old if moment is not None and moment < cutoff else fresh).append(row)
    if not detection.notification_names:
        fresh, old = [], fresh + old
    records = []
    for kind, rows in (("alert", fresh), ("signal", old)):
        if rows:
            records.append(
                DetectionRecord(
                    id=record_id(workspace_id, detection.name, matches, kind),
                    kind=kind,
                    detection=detection,
                    window_from=matches.window_from,
                    window_to=matches.window_to,
                    rows=rows,
                    columns=matches.columns,
                    truncated=matches.truncated,
                    run_time_ns=run_time_ns,
                    created_at=now.astimezone(UTC).replace(microsecond=0),
                    workspace_id=workspace_id,
                    parameters=dict(parameters or detection.parameters),
                    scheduled_run_id=scheduled_run_id,
                )
            )
    return records


def record_id(workspace_id: str, detection: str, matches: Matches, kind: str) -> str:
    key = (
        f"{workspace_id}/{detection}/{_text(matches.window_from)}/{_text(matches.window_to)}/{kind}"
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def store_records(store: LogStore, records: Sequence[DetectionRecord]) -> list[DetectionRecord]:
    """Write the records not stored yet, each confirmed by reading it back; returns those
    written. DetectionStoreError when the store refuses or does not keep one."""
    written = []
    for record in records:
        if _stored(store, record):
            continue
        try:
            store.query(_INSERT, read_only=False, params=_params(record))
        except LogStoreError as exc:
            raise DetectionStoreError(
                f"Detection {record.detection.name}: its matches could not be stored: {exc}"
            ) from None
        if not _stored(store, record):
            raise DetectionStoreError(
                f"Detection {record.detection.name}: the log store did not keep its matches for "
                f"the window {_text(record.window_from)} to {_text(record.window_to)} UTC; check "
                "the store's disk, the window runs again."
            )
        written.append(record)
    return written


def read_records(
    store: LogStore, detection: str | None = None, kind: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest rows of the detections table (of one rule, of one kind), as dicts."""
    where = ["1"]
    params: dict[str, str] = {"limit": str(limit)}
    if detection is not None:
        where.append("detectionName = {detection:String}")
        params["detection"] = detection
    if kind is not None:
        where.append("kind = {kind:String}")
        params["kind"] = kind
    result = store.query(
        f"SELECT * FROM {DETECTIONS_TABLE} FINAL WHERE {' AND '.join(where)} "  # noqa: S608
        "ORDER BY windowFrom DESC, kind LIMIT {limit:UInt32}",
        params=params,
    )
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def _stored(store: LogStore, record: DetectionRecord) -> bool:
    found = store.query(
        f"SELECT count() FROM {DETECTIONS_TABLE} WHERE detectionName = {{name:String}} "  # noqa: S608
        "AND windowFrom = {windowFrom:DateTime} AND id = {id:String}",
        params={
            "name": record.detection.name,
            "windowFrom": _text(record.window_from),
            "id": record.id,
        },
    )
    return int(found.rows[0][0]) > 0


def _params(record: DetectionRecord) -> dict[str, str]:
    detection = record.detection
    first = record.rows[0] if record.rows else {}
    # First seen first, at most RESOURCES_KEPT, in a dict (one lookup per match, not a list
    # scan): a window of a backfill holds thousands of matches on as many different targets.
    resources: dict[str, None] = {}
    for row in record.rows:
        for item in row.get("resources") or ():
            resources.setdefault(str(item))
        if len(resources) >= RESOURCES_KEPT:
            break
    return {
        "id": record.id,
        "scheduledRunID": record.scheduled_run_id,
        "workspaceID": record.workspace_id,
        "detectionID": detection.name,
        "detectionName": detection.name,
        "displayName": detection.display_name,
        "kind": record.kind,
        "severity": detection.severity,
        "riskScore": str(detection.risk_score),
        "windowFrom": _text(record.window_from),
        "windowTo": _text(record.window_to),
        "recordsReturned": str(len(record.rows)),
        "truncated": "true" if record.truncated else "false",
        "runTime": str(record.run_time_ns),
        "query": detection.statement,
        "params": json.dumps(dict(record.parameters)),
        "columnNames": json.dumps(record.columns),
        "results": json.dumps(record.compact_results(), default=str, separators=(",", ":")),
        "matchedIds": json.dumps(record.matched_ids),
        "actor": json.dumps(_string_map(first.get("actor"))),
        "resources": json.dumps(list(resources)[:RESOURCES_KEPT]),
        "srcIP": str(first.get("srcIP") or ""),
        "dstIP": str(first.get("dstIP") or ""),
        "notificationNames": json.dumps(list(detection.notification_names)),
        "categories": json.dumps(list(detection.categories)),
        "mitreAttacks": json.dumps(list(detection.mitre_attacks)),
        "createdAt": _text(record.created_at),
    }


def _event_time(row: Mapping[str, Any]) -> datetime | None:
    value = row.get("eventTime")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            return None
    return None


def _string_map(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(key): str(item) for key, item in value.items()}
    return {}


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
