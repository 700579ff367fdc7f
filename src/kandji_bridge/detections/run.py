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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kandji_bridge.detections.limits import ENV_DETECTION_SECONDS, RUN_SECONDS
from kandji_bridge.detections.rules import WINDOW_PLACEHOLDERS, Detection
from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.sql_guard import engine_sentence
from kandji_bridge.logs.store import LogStore, LogStoreError

MAX_MATCHES = 10_000


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
    seconds: int = RUN_SECONDS,
) -> Matches:
    """Run `detection` over [window_from, window_to) with its parameters, for at most `seconds`
    (the engine stops it); no scheduling here."""
    name = detection.name
    start, end = _window_bound(name, window_from), _window_bound(name, window_to)
    if start >= end:
        raise DetectionRunError(
            f"Detection {name}: the window must start before it ends "
            f"({start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC)."
        )
    bound = bind_parameters(detection, parameters)
    bound.update({"from": f"{start:%Y-%m-%d %H:%M:%S}", "to": f"{end:%Y-%m-%d %H:%M:%S}"})
    sql = (
        f"SELECT * FROM ({detection.statement}) LIMIT {int(max_rows) + 1} "
        f"SETTINGS max_execution_time = {int(seconds)}, timeout_overflow_mode = 'throw'"
    )
    try:
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
    return Matches(name, start, end, result.columns, rows, len(result.rows) > max_rows)


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
