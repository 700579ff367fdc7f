"""Detections as a user sees them: list, validate, test, run, import, enable and disable rules,
and the scheduled run of the enabled ones.

Where rules live: the built-in pack (`detections/packs/kandji/`, read-only, updated with the
product, each rule with its `NAME.fixtures.yaml`) and the home's `rules/` folder (rules a user
imported, RunReveal `NAME.yaml` + `NAME.sql` or Sigma files, with an optional
`NAME.fixtures.yaml` next to each). A name is unique across both.
Which rules run, and which channels each notifies beyond its own `notificationNames`, is the home's
`detections.json`: rules are files in the home, and their switches sit next to them, so a home
copied elsewhere keeps both. Nothing runs until a rule is enabled.
"""

import contextlib
import json
import multiprocessing
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from kandji_bridge.config import Settings, ensure_home
from kandji_bridge.db.models import DetectionSwitch, Source, utcnow
from kandji_bridge.db.state import StateDB
from kandji_bridge.detections import KANDJI_PACK
from kandji_bridge.detections.fixtures import CaseResult, FixtureCase, load_fixtures, run_case
from kandji_bridge.detections.outbox import enqueue
from kandji_bridge.detections.results import (
    UNUSED_COLUMNS,
    ensure_detections_table,
    split_matches,
    store_records,
)
from kandji_bridge.detections.rules import (
    Detection,
    Problem,
    RuleSet,
    check_rule,
    load_rules,
    rule_files,
    schedule_is_valid,
)
from kandji_bridge.detections.run import DetectionRunError, Matches, run_detection
from kandji_bridge.detections.windows import (
    MAX_WINDOWS_PER_TICK,
    Window,
    due_windows,
    last_window_end,
    last_window_ends,
    record_window,
)
from kandji_bridge.errors import BridgeError, NotFound
from kandji_bridge.jobs import status as jobs
from kandji_bridge.logs.store import ChdbLogStore, LogStore

SWITCHES_FILE = "detections.json"
RULES_FOLDER = "rules"
PACK = "pack"
IMPORTED = "imported"


@dataclass(frozen=True)
class Rule:
    """A valid rule, where it comes from, and whether it runs."""

    detection: Detection
    origin: str  # PACK or IMPORTED
    enabled: bool
    notify: tuple[str, ...] = ()  # channels added to the rule's own notificationNames

    @property
    def name(self) -> str:
        return self.detection.name

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.detection.notification_names, *self.notify)))


@dataclass
class Rules:
    rules: list[Rule] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # rules in the home that do not load


@dataclass(frozen=True)
class ImportReport:
    imported: list[str]
    replaced: list[str]


@dataclass(frozen=True)
class RuleFile:
    """One file of a rules folder as a client sends it to a service that cannot read the client's
    folder: its name (no folder) and its text."""

    name: str
    text: str


RULE_FILE_SUFFIXES = (".yaml", ".yml", ".sql")
MAX_RULE_FILES = 2_000
MAX_RULE_FILES_CHARS = 20_000_000


def rules_folder(settings: Settings) -> Path:
    return settings.home / RULES_FOLDER


def list_rules(state: StateDB, store: LogStore) -> Rules:
    """Every rule of the pack and of the home, validated on `store`, with its switch."""
    settings = state.settings
    switches = _read_switches(state)
    result = Rules()
    pack = load_rules(KANDJI_PACK, store)
    result.problems.extend(pack.problems)
    names = set()
    for origin, detections in ((PACK, pack.detections), (IMPORTED, _imported(settings, store))):
        if isinstance(detections, RuleSet):
            result.problems.extend(detections.problems)
            detections = detections.detections
        for detection in detections:
            if detection.name in names:
                continue
            names.add(detection.name)
            switch = switches.get(detection.name)
            if switch and schedule_is_valid(str(switch.get("schedule", ""))):
                detection = replace(detection, schedule=str(switch["schedule"]))
            result.rules.append(
                Rule(
                    detection,
                    origin,
                    switch is not None,
                    tuple(switch.get("notify", ())) if switch else (),
                )
            )
    result.rules.sort(key=lambda rule: rule.name)
    return result


def get_rule(state: StateDB, store: LogStore, name: str) -> Rule:
    """One rule by name; NotFound names the way to see them all."""
    return _find_rule(state.settings, store, name, _read_switches(state).get(name), state)


def _find_rule(
    settings: Settings, store: LogStore, name: str, switch: dict | None, state: StateDB | None
) -> Rule:
    # Its own file first: validating every rule for one (each a query plan) is what a scheduler
    # tick of every enabled rule cannot afford.
    for origin, folder in ((PACK, KANDJI_PACK), (IMPORTED, rules_folder(settings))):
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name}{suffix}"
            if not path.is_file():
                continue
            detection, problems = check_rule(path, store)
            if detection is None:
                raise BridgeError(problems[0].sentence)
            if detection.name != name:
                continue
            if switch and schedule_is_valid(str(switch.get("schedule", ""))):
                detection = replace(detection, schedule=str(switch["schedule"]))
            notify = tuple(switch.get("notify", ())) if switch else ()
            return Rule(detection, origin, switch is not None, notify)
    if state is None:
        raise _no_detection(name)
    rules = list_rules(state, store)
    for rule in rules.rules:
        if rule.name == name:
            return rule
    broken = [p.sentence for p in rules.problems if p.rule == name]
    if broken:
        raise BridgeError(broken[0])
    raise _no_detection(name)


def validate_folder(folder: Path, store: LogStore) -> RuleSet:
    """The rules of `folder` and one sentence per problem (nothing is imported)."""
    return load_rules(folder, store)


def read_rule_files(folder: Path) -> list[RuleFile]:
    """The rule files of a folder on this machine (NAME.yaml / .yml / .sql, fixtures included),
    to validate or import them where the folder cannot be read (a running service)."""
    if not folder.is_dir():
        raise BridgeError(f"The rules folder {folder} does not exist; give a folder of NAME.yaml.")
    files = []
    for path in sorted(folder.iterdir()):
        if path.suffix not in RULE_FILE_SUFFIXES or not path.is_file():
            continue
        try:
            files.append(RuleFile(path.name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise BridgeError(
                f"Cannot read {path.name} in {folder} ({exc}); make it readable UTF-8 text."
            ) from None
    return files


def validate_files(files: Sequence[RuleFile], store: LogStore) -> RuleSet:
    """`validate_folder` of a folder sent as its files."""
    with _unpacked(files) as folder:
        return load_rules(folder, store)


def import_files(
    settings: Settings, store: LogStore, files: Sequence[RuleFile], folder_name: str
) -> ImportReport:
    """`import_rules` of a folder sent as its files; `folder_name` is how its sentences name it."""
    with _unpacked(files) as folder:
        return import_rules(settings, store, folder, shown_as=folder_name)


@contextlib.contextmanager
def _unpacked(files: Sequence[RuleFile]) -> Iterator[Path]:
    """The files in a scratch folder of their own, removed afterwards."""
    if len(files) > MAX_RULE_FILES or sum(len(f.text) for f in files) > MAX_RULE_FILES_CHARS:
        raise BridgeError(
            f"That is too much to check at once (at most {MAX_RULE_FILES:,} files and "
            f"{MAX_RULE_FILES_CHARS // 1_000_000} MB); send the rules in smaller folders."
        )
    with tempfile.TemporaryDirectory(prefix="kandji-bridge-rules-") as scratch:
        folder = Path(scratch)
        for file in files:
            if (
                Path(file.name).name != file.name
                or file.name.startswith(".")
                or not file.name.isprintable()
                or Path(file.name).suffix not in RULE_FILE_SUFFIXES
            ):
                raise BridgeError(
                    f"{file.name!r} is not the name of a rule file (NAME.yaml, NAME.yml or "
                    "NAME.sql, without a folder); send only those."
                )
            try:
                (folder / file.name).write_text(file.text, encoding="utf-8")
            except (OSError, ValueError) as exc:
                raise BridgeError(
                    f"Cannot take the rule file {file.name!r} ({exc}); send it as UTF-8 text."
                ) from None
        yield folder


def import_rules(
    settings: Settings, store: LogStore, folder: Path, *, shown_as: str | None = None
) -> ImportReport:
    """Copy the valid rules of `folder` (with their SQL and fixtures) into the home's rules.

    All or nothing: a folder with any problem, or a rule named as one of the pack's, imports
    nothing. A rule imported before under the same name is replaced.
    """
    checked = load_rules(folder, store)
    if checked.problems:
        raise BridgeError(
            f"Nothing was imported: {checked.problems[0].sentence}"
            + (
                f" ({len(checked.problems) - 1} more problem(s); `detections validate` lists them.)"
                if len(checked.problems) > 1
                else ""
            )
        )
    if not checked.detections:
        raise BridgeError(
            f"The folder {shown_as or folder} holds no rules (NAME.yaml); nothing was imported."
        )
    pack = {path.stem for path in rule_files(KANDJI_PACK)}
    clashes = sorted(d.name for d in checked.detections if d.name in pack)
    if clashes:
        raise BridgeError(
            f"Nothing was imported: {clashes[0]} is the name of a built-in rule; rename the "
            "imported rule (its name field and its files)."
        )
    target = rules_folder(settings)
    ensure_home(settings)
    target.mkdir(exist_ok=True, mode=0o700)
    report = ImportReport([], [])
    for detection in checked.detections:
        existing = (target / f"{detection.name}.yaml").exists()
        (report.replaced if existing else report.imported).append(detection.name)
        shutil.copyfile(detection.path, target / f"{detection.name}{detection.path.suffix}")
        sql = detection.path.with_suffix(".sql")
        if sql.exists() and sql != detection.path:
            shutil.copyfile(sql, target / f"{detection.name}.sql")
        fixtures = detection.path.with_name(f"{detection.path.stem}.fixtures.yaml")
        if fixtures.exists():
            shutil.copyfile(fixtures, target / f"{detection.name}.fixtures.yaml")
    return report


def set_enabled(
    state: StateDB,
    store: LogStore,
    name: str,
    enabled: bool,
    notify: tuple[str, ...] = (),
) -> Rule:
    """Enable (with extra channels to notify) or disable a rule; returns it as it now is."""
    rule = get_rule(state, store, name)
    with state.session() as session:
        switch = session.get(DetectionSwitch, name)
        if not enabled:
            if switch is not None:
                session.delete(switch)
        else:
            channels = json.dumps(list(dict.fromkeys(notify or rule.notify)))
            if switch is None:
                session.add(DetectionSwitch(detection=name, notify=channels))
            else:
                switch.notify = channels
    return get_rule(state, store, name)


def enable_pack(state: StateDB, schedule: str, notify: tuple[str, ...] = ()) -> list[str]:
    """Enable every rule of the built-in pack on `schedule` instead of its own (the demo: alerts
    within minutes), notifying `notify`; returns the names."""
    if not schedule_is_valid(schedule):
        raise BridgeError(f"The schedule {schedule!r} is not a cron expression or @15m / @1h.")
    names = sorted(path.stem for path in rule_files(KANDJI_PACK))
    _read_switches(state)  # a detections.json of an older version is moved in first
    with state.session() as session:
        for name in names:
            switch = session.get(DetectionSwitch, name) or DetectionSwitch(detection=name)
            switch.notify = json.dumps(list(notify))
            switch.schedule = schedule
            session.add(switch)
    return names


def test_rule(settings: Settings, name: str, holds_store: bool = False) -> list[CaseResult]:
    """Run the fixtures next to a rule (NAME.fixtures.yaml; the pack's ship with it) on a scratch
    in-memory store. A process can hold only one embedded store: when the caller holds the
    configured one open (`serve` does) and it is embedded, the cases run in a process of their
    own."""
    fixtures = _fixtures_path(settings, name)
    cases = load_fixtures(fixtures)
    if not cases:
        raise BridgeError(f"{fixtures.name} has no cases; add positive and negative cases.")
    if not (holds_store and settings.log_store.startswith("chdb:")):
        return _run_cases(settings, name, cases)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_run_cases, settings, name, cases).result()


def _run_cases(settings: Settings, name: str, cases: list[FixtureCase]) -> list[CaseResult]:
    # The fixtures empty kandji_logs before and after each case: never the real store.
    with ChdbLogStore(":memory:") as scratch:
        scratch.ensure_schema()
        detection = _find_rule(settings, scratch, name, None, None).detection
        return [run_case(scratch, detection, case) for case in cases]


def run_rule(
    state: StateDB,
    store: LogStore,
    name: str,
    window_from: datetime,
    window_to: datetime,
    parameters: Mapping[str, str] | None = None,
) -> Matches:
    """Run a rule over [from, to) now, enabled or not; nothing is stored or sent."""
    detection = get_rule(state, store, name).detection
    return run_detection(
        store,
        detection,
        _whole(window_from),
        _whole(window_to, up=True),
        parameters,
        seconds=state.settings.detection_limits.run_seconds,
    )


@dataclass(frozen=True)
class RuleStatus:
    """A rule as the Detections page shows it: its switch, its last run and what it found."""

    rule: Rule
    last_run: datetime | None
    last_error: str | None
    reached: datetime | None  # the end of the last window it ran
    alerts: int
    signals: int
    matches: int


def rule_statuses(
    settings: Settings, state: StateDB, store: LogStore, rules: Rules | None = None
) -> list[RuleStatus]:
    """Every rule (of `rules` when the caller listed them already) with its job's last run and
    its counts in the detections table."""
    listed = (rules if rules is not None else list_rules(state, store)).rules
    statuses = jobs.job_statuses(state)
    ensure_detections_table(store)
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for name, kind, rows, matched in store.query(
        "SELECT detectionName, kind, count(), sum(recordsReturned) FROM detections FINAL "
        "GROUP BY detectionName, kind"
    ).rows:
        counts[(str(name), str(kind))] = (int(rows), int(matched))
    result = []
    for rule in listed:
        status = statuses.get(jobs.detection_job(rule.name))
        alerts = counts.get((rule.name, "alert"), (0, 0))
        signals = counts.get((rule.name, "signal"), (0, 0))
        result.append(
            RuleStatus(
                rule,
                status.last_started_at if status else None,
                status.last_error if status else None,
                last_window_end(state, rule.name),
                alerts[0],
                signals[0],
                alerts[1] + signals[1],
            )
        )
    return result


# -- the scheduled run --------------------------------------------------------------------------


def enabled_rule_names(state: StateDB) -> list[str]:
    return sorted(_read_switches(state))


def stored_up_to(state: StateDB, now: datetime) -> datetime:
    """The time before which every polled source has stored what it received.

    `receivedAt` is stamped when a page is transformed, just before its insert, so only a pass
    running now can still add rows received in the past: from its start on. An idle source (done,
    failed, or never able to read the logs) adds nothing behind now, and must not hold the
    windows of the others back."""
    with state.session() as session:
        ids = list(session.scalars(select(Source.id).where(Source.logs_enabled.is_(True))))
    statuses = jobs.job_statuses(state)
    oldest = now
    for source_id in ids:
        status = statuses.get(jobs.source_job(source_id))
        if status is not None and status.running and status.last_started_at is not None:
            oldest = min(oldest, status.last_started_at)
    return oldest


# A rule that failed is tried again from the same window after this long, not on every tick of
# the job (every few seconds): a rule that times out would otherwise run its minute-long query
# over and over.
RULE_RETRY = timedelta(seconds=30)


@dataclass
class LoadedRules:
    """The enabled rules as the detections job last loaded them, and what they were loaded from.

    Loading a rule validates it on the engine (an EXPLAIN each), too much to repeat on every
    tick: the job keeps them here and loads again only when a rule file or a switch changed.
    A rule that did not load is not kept, so a passing failure (the store away) is tried again.
    """

    key: tuple = ()
    detections: dict[str, Detection] = field(default_factory=dict)


@dataclass
class DetectionsRun:
    """What one tick of the detections job did: the windows each rule ran, and the rules that
    failed (one sentence each; their windows wait for the next tick)."""

    ran: dict[str, list[Window]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def run_due_detections(
    settings: Settings,
    state: StateDB,
    store: LogStore,
    now: datetime,
    loaded: LoadedRules | None = None,
    *,
    names: list[str] | None = None,
    stop: threading.Event | None = None,
    max_windows: int = MAX_WINDOWS_PER_TICK,
    retry: timedelta = RULE_RETRY,
) -> DetectionsRun:
    """One tick of the detections job: every due window of every enabled rule (or of `names`),
    oldest first, at most `max_windows` per rule. Each window's matches are stored, its alerts
    enqueued, then it is recorded. A rule that fails keeps its sentence as its status and runs
    no later window until `retry` has passed, so none is skipped; the other rules go on."""
    switches = _read_switches(state)
    if names is not None:
        switches = {name: switch for name, switch in switches.items() if name in names}
    result = DetectionsRun()
    if not switches:
        return result
    loaded = loaded if loaded is not None else LoadedRules()
    detections = _load_enabled(state, store, switches, loaded, result.errors)
    reached = stored_up_to(state, now)
    ends = last_window_ends(state)
    waiting = _failed_recently(state, retry)
    due = []
    for name, detection in detections.items():
        if name in waiting:
            continue
        windows = due_windows(
            detection.schedule, ends.get(name), now, reached, max_windows=max_windows
        )
        due.extend((window.start, name, window) for window in windows)
    if due:
        ensure_detections_table(store)
    started: set[str] = set()
    overtaken: set[str] = set()  # another process ran their window first; its windows count
    for _, name, window in sorted(due, key=lambda item: item[:2]):
        if stop is not None and stop.is_set():
            break
        if name in result.errors or name in overtaken:
            continue
        if name not in started:
            jobs.record_start(state, jobs.detection_job(name))
            started.add(name)
        try:
            if _run_window(settings, state, store, detections[name], window, now):
                result.ran.setdefault(name, []).append(window)
            else:
                overtaken.add(name)
        except BridgeError as exc:
            result.errors[name] = exc.message
    for name in sorted(started | set(result.errors)):
        job = jobs.detection_job(name)
        if name in result.errors:
            if name not in started:
                jobs.record_start(state, job)
            jobs.record_failure(state, job, result.errors[name])
        else:
            jobs.record_success(state, job)
    return result


def run_due_windows(
    settings: Settings, state: StateDB, store: LogStore, name: str, now: datetime
) -> list[Window]:
    """One tick of one enabled rule (see run_due_detections); its failure raises its sentence."""
    result = run_due_detections(settings, state, store, now, names=[name])
    if name in result.errors:
        raise DetectionRunError(result.errors[name])
    return result.ran.get(name, [])


def _failed_recently(state: StateDB, retry: timedelta) -> set[str]:
    """The rules whose last run failed less than `retry` ago (by the state DB's clock)."""
    since = utcnow() - retry
    return {
        key.partition(":")[2]
        for key, status in jobs.job_statuses(state).items()
        if key.startswith(f"{jobs.DETECTION}:")
        and status.last_error is not None
        and status.last_finished_at is not None
        and status.last_finished_at > since
    }


def _load_enabled(
    state: StateDB,
    store: LogStore,
    switches: dict[str, dict],
    loaded: LoadedRules,
    errors: dict[str, str],
) -> dict[str, Detection]:
    """The enabled rules, each with its schedule and channels from its switch."""
    key = (json.dumps(switches, sort_keys=True), _rule_files(state.settings))
    if key != loaded.key:
        loaded.key, loaded.detections = key, {}
    detections = {}
    for name, switch in sorted(switches.items()):
        detection = loaded.detections.get(name)
        if detection is None:
            try:
                rule = _find_rule(state.settings, store, name, switch, state)
            except BridgeError as exc:
                errors[name] = exc.message
                continue
            detection = replace(rule.detection, notification_names=rule.channels)
            loaded.detections[name] = detection
        detections[name] = detection
    return detections


def _rule_files(settings: Settings) -> tuple[tuple[str, int, int], ...]:
    """Every file of the pack and the home's rules, with its modification time and size: a
    change to any of them is a change to the rules."""
    files = []
    for folder in (KANDJI_PACK, rules_folder(settings)):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile: not a rule now
                stat = path.stat()
                files.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(files)


def _run_window(
    settings: Settings,
    state: StateDB,
    store: LogStore,
    detection: Detection,
    window: Window,
    now: datetime,
) -> bool:
    """Run one window, store its matches, enqueue its alerts and record it; False when another
    process recorded it first."""
    started = datetime.now(UTC)
    limits = settings.detection_limits
    matches = run_detection(
        store,
        detection,
        window.start,
        window.end,
        omit=UNUSED_COLUMNS,
        seconds=limits.run_seconds,
    )
    elapsed = int((datetime.now(UTC) - started).total_seconds() * 1e9)
    records = split_matches(
        detection,
        matches,
        now=now,
        workspace_id=state.workspace_id,
        run_time_ns=elapsed,
        signal_age=limits.signal_age,
    )
    for record in store_records(store, records):
        if record.kind == "alert":
            enqueue(state, record.alert(), detection.notification_names, now)
    return record_window(state, detection.name, window)


# -- helpers --------------------------------------------------------------------------------


def _imported(settings: Settings, store: LogStore) -> RuleSet:
    folder = rules_folder(settings)
    return load_rules(folder, store) if folder.is_dir() else RuleSet()


def _fixtures_path(settings: Settings, name: str) -> Path:
    for folder in (KANDJI_PACK, rules_folder(settings)):
        path = folder / f"{name}.fixtures.yaml"
        if path.exists():
            return path
    known = any(
        (folder / f"{name}{suffix}").exists()
        for folder in (KANDJI_PACK, rules_folder(settings))
        for suffix in (".yaml", ".yml")
    )
    if not known:
        raise _no_detection(name)
    raise BridgeError(
        f"Detection {name} has no fixtures; put {name}.fixtures.yaml next to its rule and "
        "import it again."
    )


def _no_detection(name: str) -> NotFound:
    missing = f"There is no detection named {name}; "
    return NotFound(
        missing + "`detections list` shows them.",
        in_web=missing + "the Detections page lists them.",
    )


def _read_switches(state: StateDB) -> dict[str, dict]:
    """The enabled rules: {name: {"notify": [...], "schedule": ...}}."""
    _move_switches_file(state)
    with state.session() as session:
        rows = session.scalars(select(DetectionSwitch)).all()
        return {
            row.detection: {"notify": json.loads(row.notify)}
            | ({"schedule": row.schedule} if row.schedule else {})
            for row in rows
        }


def _move_switches_file(state: StateDB) -> None:
    """Earlier versions kept the switches in the home's detections.json: moved into the state DB
    once (rules already there keep theirs), and the file renamed aside so it is not read again."""
    path = state.settings.home / SWITCHES_FILE
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return  # another process moved it
    except (OSError, ValueError) as exc:
        raise BridgeError(
            f"Cannot read which detections were enabled from {path} ({exc}); fix or delete it."
        ) from None
    enabled = data.get("enabled") if isinstance(data, dict) else None
    if not isinstance(enabled, dict):
        raise BridgeError(f"{path} does not list enabled detections as expected; fix or delete it.")
    try:
        with state.session() as session:
            for name, switch in enabled.items():
                switch = switch if isinstance(switch, dict) else {}
                if session.get(DetectionSwitch, str(name)) is None:
                    session.add(
                        DetectionSwitch(
                            detection=str(name),
                            notify=json.dumps([str(c) for c in switch.get("notify", ())]),
                            schedule=str(switch["schedule"]) if switch.get("schedule") else None,
                        )
                    )
    except IntegrityError:
        pass  # another process moved the same file at the same time
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, path.with_name(SWITCHES_FILE + ".moved"))


def _whole(moment: datetime, *, up: bool = False) -> datetime:
    """A window bound in whole seconds of UTC (a time without a zone is UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment.microsecond and up:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.replace(microsecond=0)
