"""Run one detection over one window [from, to) of `receivedAt`, and return what it matched.

Windows are on `receivedAt` (when kandji-bridge stored the event), not `eventTime`, so an event
Kandji reports late still falls in the next window instead of one already run; consecutive windows
tile time with no gap or overlap. The SQL runs with its typed placeholders bound by the engine:
`{from:DateTime}` and `{to:DateTime}` to the window, the others to the rule's parameters (its
defaults, overridden by the caller's). What runs is the statement the rule was validated as, in a
subquery bounded in rows and time, so a rule cannot fill the memory or hold a worker forever.
"""

# The statement is the engine's own rendering of a validated rule; values are bound parameters.
# ruff: noqa: S608

import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kandji_bridge.detections.limits import ENV_DETECTION_SECONDS, RUN_SECONDS
from kandji_bridge.detections.rules import WINDOW_PLACEHOLDERS, Detection
from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.sql_guard import engine_sentence
from kandji_bridge.logs.store import LogStore, LogStoreError

MAX_MATCHES = 10_000
_LAZY_SETTING = "query_plan_max_limit_for_lazy_materialization"
_LAZY_KNOWN: "weakref.WeakKeyDictionary[Any, bool]" = weakref.WeakKeyDictionary()
_COLUMNS: "weakref.WeakKeyDictionary[Any, dict[str, list[str]]]" = weakref.WeakKeyDictionary()


class DetectionRunError(BridgeError):
    """A detection could not run; the sentence names the rule."""


@dataclass(frozen=True)
class Matches:
    """What one run of a detection found: one dict per result row, columns as the SQL names them."""

    detection: str
    window_from: datetime
    window_to: datetime
    columns: list[str]
    rows: list[dict[str, Any]]
    truncated: bool  # the SQL returned more than the run's row limit; `rows` holds the first ones


def run_detection(
    store: LogStore,
    detection: Detection,
    window_from: datetime,
    window_to: datetime,
    parameters: Mapping[str, str] | None = None,
    max_rows: int = MAX_MATCHES,
    omit: Collection[str] = (),
    seconds: int = RUN_SECONDS,
) -> Matches:
    """Run `detection` over [window_from, window_to) with its parameters, for at most `seconds`
    (the engine stops it); no scheduling here.

    Columns of the rule named in `omit` are left out of the rows (`columns` still lists every
    column of the rule): what a caller never uses, the engine then does not read."""
    name = detection.name
    start, end = _window_bound(name, window_from), _window_bound(name, window_to)
    if start >= end:
        raise DetectionRunError(
            f"Detection {name}: the window must start before it ends "
            f"({start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC)."
        )
    bound = bind_parameters(detection, parameters)
    bound.update({"from": f"{start:%Y-%m-%d %H:%M:%S}", "to": f"{end:%Y-%m-%d %H:%M:%S}"})
    columns: list[str] | None = None
    try:
        selected = "*"
        if omit:
            columns = _columns(store, detection.statement, bound)
            left_out = [column for column in columns if column in omit]
            if left_out:
                selected = f"* EXCEPT ({', '.join(map(_identifier, left_out))})"
        sql = (
            f"SELECT {selected} FROM ({detection.statement}) LIMIT {int(max_rows) + 1} "
            f"SETTINGS max_execution_time = {int(seconds)}, timeout_overflow_mode = 'throw', "
            f"{_engine_settings(store, max_rows)}"
        )
        result = store.query(sql, params=bound)
    except LogStoreError as exc:
        message = engine_sentence(str(exc).removeprefix("The log store refused the query: "))
        if "Timeout exceeded" in message:
            raise DetectionRunError(
                f"Detection {name} ran longer than the {int(seconds)} s a rule may run and was "
                f"stopped; make its SQL read less (a shorter lookback, fewer columns), raise "
                f"{ENV_DETECTION_SECONDS}, or disable it."
            ) from None
        raise DetectionRunError(
            f"Detection {name} failed to run: {message.rstrip('.')}; fix its SQL or parameters "
            "(or disable it)."
        ) from None
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows[:max_rows]]
    return Matches(name, start, end, columns or result.columns, rows, len(result.rows) > max_rows)


def _columns(store: LogStore, statement: str, bound: Mapping[str, str]) -> list[str]:
    """The columns a rule's statement returns, asked of the engine once per statement."""
    known = _COLUMNS.setdefault(store, {})
    if statement not in known:
        described = store.query(f"DESCRIBE TABLE ({statement})", params=bound)
        known[statement] = [str(row[0]) for row in described.rows]
    return known[statement]


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _engine_settings(store: LogStore, max_rows: int) -> str:
    """Settings that spare the engine work on a rule's run, those this engine knows.

    The rules of a pack read the same window (and often the same baseline) one after the other:
    the uncompressed cache spares all but the first the decompression. A window of a backfill
    holds a year of events and a rule that orders its many matches reads every column of each
    to sort them; lazy materialization (ClickHouse 25.4 and later) sorts on the columns the
    ORDER BY needs and reads the others for the rows kept only.
    """
    known = _LAZY_KNOWN.get(store)
    if known is None:
        try:
            found = store.query(
                "SELECT count() FROM system.settings WHERE name = {name:String}",
                params={"name": _LAZY_SETTING},
            )
        except LogStoreError:
            found = None  # the run itself will say what is wrong; ask again next time
        known = bool(found and int(found.rows[0][0]))
        if found is not None:
            _LAZY_KNOWN[store] = known
    lazy = f", {_LAZY_SETTING} = {int(max_rows) + 1}" if known else ""
    return f"use_uncompressed_cache = 1{lazy}"


def bind_parameters(
    detection: Detection, parameters: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The rule's parameter values: its defaults, overridden by `parameters` (text values)."""
    bound = dict(detection.parameters)
    for key, value in (parameters or {}).items():
        if key in WINDOW_PLACEHOLDERS:
            raise DetectionRunError(
                f"Detection {detection.name}: parameter {key!r} is the window's own; "
                "give the window instead."
            )
        if key not in bound:
            known = ", ".join(sorted(bound)) or "none"
            raise DetectionRunError(
                f"Detection {detection.name} has no parameter {key!r}; its parameters: {known}."
            )
        bound[key] = str(value)
    return bound


def _window_bound(name: str, moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise DetectionRunError(
            f"Detection {name}: window times need a time zone (UTC); got {moment.isoformat()}."
        )
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        raise DetectionRunError(
            f"Detection {name}: window times are whole seconds (receivedAt is a DateTime); "
            f"got {moment.isoformat()}."
        )
    return moment
