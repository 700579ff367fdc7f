"""Run a rule's fixtures: Kandji audit events that must (positive) or must not (negative) match.

A rule's fixtures are one `NAME.fixtures.yaml`:

    parameters: {threshold: "5"}        # optional: overrides for every case
    positive:
      - case: one admin deletes five devices in two minutes
        matches: 1                      # optional: the exact number of result rows
        parameters: {...}               # optional: overrides for this case
        events:
          - {"id": "01J...", "action": "delete", ...}   # a Kandji audit event, as the API sends it
          - received: -3d                                # received 3 days before the window
            event: {"id": "01J...", ...}
    negative:
      - case: ...

Each case runs alone on a scratch log store: its events go through the product's own transform
(normalize, then enrich with the bundled geoip2fast data) and are inserted with their receive time,
the rule runs over the window [FIXTURE_WINDOW_START, + 15 minutes), and the table is emptied again.
An event is received 5 minutes into the window unless `received` gives an offset from the window's
start (`-3d`, `-55m`, `+10m`, `-30s`). A positive case passes with at least one row (or exactly
`matches`), a negative one with none.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from kandji_bridge.detections.rules import Detection
from kandji_bridge.detections.run import run_detection
from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.enrich import Enricher, build_enricher
from kandji_bridge.logs.normalize import NormalizeContext
from kandji_bridge.logs.schema import LOGS_TABLE
from kandji_bridge.logs.store import LogStore
from kandji_bridge.logs.transform import transform

FIXTURE_WINDOW_START = datetime(2025, 3, 6, 9, 0, 0, tzinfo=UTC)
FIXTURE_WINDOW = timedelta(minutes=15)
DEFAULT_RECEIVED = timedelta(minutes=5)
FIXTURE_SOURCE_ID = "src-fixtures"
FIXTURE_WORKSPACE_ID = "ws-fixtures"
_OFFSET = re.compile(r"([+-])(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class FixtureError(BridgeError):
    """A fixtures file that cannot be read as fixtures."""


@dataclass(frozen=True)
class FixtureEvent:
    received: timedelta  # offset of its receivedAt from the window's start
    data: Any
    raw: str


@dataclass(frozen=True)
class FixtureCase:
    name: str
    positive: bool
    events: list[FixtureEvent]
    parameters: dict[str, str] = field(default_factory=dict)
    matches: int | None = None


@dataclass(frozen=True)
class CaseResult:
    case: FixtureCase
    rows: list[dict[str, Any]]
    passed: bool
    sentence: str  # what happened, for a test failure or a report


def load_fixtures(path: Path) -> list[FixtureCase]:
    """The cases of one `NAME.fixtures.yaml`; FixtureError names the file and what is wrong."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FixtureError(f"Cannot read the fixtures {path.name}: {exc}") from None
    if not isinstance(data, dict) or not (data.get("positive") or data.get("negative")):
        raise FixtureError(f"The fixtures {path.name} need a positive or negative list of cases.")
    shared = _parameters(path, data.get("parameters"))
    cases = []
    for kind in ("positive", "negative"):
        for index, item in enumerate(data.get(kind) or []):
            if not isinstance(item, dict) or not item.get("events"):
                raise FixtureError(f"{path.name}: {kind} case {index + 1} needs a list of events.")
            name = str(item.get("case") or f"{kind} case {index + 1}")
            cases.append(
                FixtureCase(
                    name=name,
                    positive=kind == "positive",
                    events=[_event(path, name, event) for event in item["events"]],
                    parameters={**shared, **_parameters(path, item.get("parameters"))},
                    matches=item.get("matches"),
                )
            )
    return cases


def run_case(
    store: LogStore, detection: Detection, case: FixtureCase, enricher: Enricher | None = None
) -> CaseResult:
    """Run one case on a scratch store (its kandji_logs is emptied before and after)."""
    enricher = enricher or build_enricher([], None, env={})
    store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
    try:
        by_time: dict[timedelta, list[FixtureEvent]] = {}
        for event in case.events:
            by_time.setdefault(event.received, []).append(event)
        for offset, events in sorted(by_time.items()):
            ctx = NormalizeContext(
                FIXTURE_WORKSPACE_ID,
                FIXTURE_SOURCE_ID,
                0,
                received_at=FIXTURE_WINDOW_START + offset,
            )
            out = transform(events, ctx, enricher)
            if out.quarantine:
                raise FixtureError(
                    f"Fixture case {case.name!r}: an event cannot be stored "
                    f"({out.quarantine[0].reason}); fix the event."
                )
            store.insert(out.rows)
        found = run_detection(
            store,
            detection,
            FIXTURE_WINDOW_START,
            FIXTURE_WINDOW_START + FIXTURE_WINDOW,
            case.parameters,
        )
    finally:
        store.query(f"TRUNCATE TABLE {LOGS_TABLE}", read_only=False)
    count = len(found.rows)
    if case.positive:
        passed = count >= 1 if case.matches is None else count == case.matches
        wanted = "at least 1" if case.matches is None else str(case.matches)
    else:
        passed = count == 0
        wanted = "0"
    kind = "positive" if case.positive else "negative"
    sentence = (
        f"Rule {detection.name}, {kind} case {case.name!r}: {count} row(s), expected {wanted}."
    )
    return CaseResult(case, found.rows, passed, sentence)


def _event(path: Path, case: str, item: Any) -> FixtureEvent:
    received = DEFAULT_RECEIVED
    if isinstance(item, dict) and "event" in item:
        received = _offset(path, case, item.get("received", "+5m"))
        item = item["event"]
    if not isinstance(item, dict):
        raise FixtureError(f"{path.name}, case {case!r}: an event must be a JSON object.")
    return FixtureEvent(received, item, json.dumps(item))


def _offset(path: Path, case: str, text: Any) -> timedelta:
    match = _OFFSET.fullmatch(str(text))
    if not match:
        raise FixtureError(
            f"{path.name}, case {case!r}: received {text!r} must be an offset such as -3d or +5m."
        )
    sign, amount, unit = match.groups()
    delta = timedelta(**{_UNITS[unit]: int(amount)})
    return -delta if sign == "-" else delta


def _parameters(path: Path, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FixtureError(f"{path.name}: parameters must map names to text values.")
    return {str(key): str(item) for key, item in value.items()}
