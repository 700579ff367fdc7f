"""Load and validate detection rules: RunReveal's `NAME.yaml` + `NAME.sql`, one rule per pair.

The YAML fields are RunReveal's, so a rule written here runs unchanged there (our `kandji_logs`
has its 46 columns): `name`, `displayName`, `description`, `notes`, `categories`, `severity`,
`riskScore`, `mitreAttacks`, `mitreTechniques`, `schedule`, `parameters`, `notificationNames`,
`disabled`, and the `file`, `sourceTypes` and `type` RunReveal's own packs carry. Parameter values
are text, as in RunReveal's packs; the SQL reads each through a typed placeholder
(`{threshold:UInt32}`) and the engine parses the text as that type. A Sigma rule (a YAML file
with `logsource` and `detection`) is converted by `sigma` into fields and SQL, then checked alike.

Every problem is one sentence naming the rule and the field. The checks that need the engine
(does the SQL parse, only read, and plan against `kandji_logs`) run through `sql_guard` and
`EXPLAIN PLAN` on the store the rules will run on, with the rule's parameter values bound.
"""

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from croniter import croniter

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.sql_guard import QueryRefused, check_read_only, engine_sentence
from kandji_bridge.logs.store import LogStore, LogStoreError

REQUIRED_FIELDS = ("name", "displayName", "description", "severity", "schedule")
OPTIONAL_FIELDS = (
    "notes",
    "categories",
    "riskScore",
    "mitreAttacks",
    "mitreTechniques",
    "parameters",
    "notificationNames",
    "disabled",
    "file",
    "sourceTypes",
    "type",
)
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
# RunReveal's words; its own packs also write them in lower case.
SEVERITIES = ("Low", "Medium", "High", "Critical")
# The window every run binds: [from, to) on receivedAt.
WINDOW_PLACEHOLDERS = {"from": "DateTime", "to": "DateTime"}
WINDOW_SENTENCE = "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}"
INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
CRON_ALIASES = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")

# A rule's status is kept under the job key "detection:NAME", which the state DB holds in 100.
NAME_MAX = 90
_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{NAME_MAX - 1}}}")
_PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TACTIC = re.compile(r"TA\d{4}")
_TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")
_INTERVAL = re.compile(r"@(\d+)([smhd])")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}")
# String literals, quoted identifiers and comments, blanked before looking for placeholders.
_NOT_CODE = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`|--[^\n]*|/\*.*?\*/", re.DOTALL)
_COLUMN = r"(?:\b\w+\.)?`?receivedAt`?"
_WINDOW_FROM = re.compile(_COLUMN + r"\s*>=\s*\(?\s*\{\s*from\s*:\s*DateTime\s*\}")
_WINDOW_TO = re.compile(_COLUMN + r"\s*<\s*\(?\s*\{\s*to\s*:\s*DateTime\s*\}")
_BAD_PARAMETER = re.compile(r"for query parameter '(\w+)'")
# Window values bound while checking a rule: any valid pair does.
_SAMPLE_WINDOW = {"from": "2000-01-01 00:00:00", "to": "2000-01-01 00:15:00"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one rule; str() is the sentence shown to the user."""

    rule: str
    field: str
    sentence: str

    def __str__(self) -> str:
        return self.sentence


@dataclass(frozen=True)
class Detection:
    """A validated rule. `statement` is what runs: the engine's rendering of the rule's SQL."""

    name: str
    display_name: str
    description: str
    severity: str
    schedule: str
    sql: str
    statement: str
    path: Path
    notes: str = ""
    categories: tuple[str, ...] = ()
    risk_score: int = 0
    mitre_attacks: tuple[str, ...] = ()
    mitre_techniques: tuple[str, ...] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)
    placeholders: Mapping[str, str] = field(default_factory=dict)  # name -> ClickHouse type
    notification_names: tuple[str, ...] = ()
    disabled: bool = False
    source_types: tuple[str, ...] = ()


class InvalidRules(BridgeError):
    """One or more rules failed validation; str() is one sentence per problem, a line each."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.sentence for p in problems))
        self.problems = problems


@dataclass
class RuleSet:
    """A folder's rules: the valid ones, and every problem of the others."""

    detections: list[Detection] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


FIXTURES_SUFFIX = ".fixtures.yaml"  # a rule's example events, next to it (detections/fixtures.py)


def rule_files(folder: Path) -> list[Path]:
    """The rule files of a folder (`NAME.yaml`, Sigma `*.yml`), not their fixtures."""
    return sorted(
        path
        for path in Path(folder).iterdir()
        if path.suffix in (".yaml", ".yml")
        and not path.name.endswith(FIXTURES_SUFFIX)
        and path.is_file()
    )


def load_rules(folder: Path, store: LogStore) -> RuleSet:
    """Every `*.yaml` / `*.yml` rule of a folder (not its subfolders), validated on `store`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BridgeError(f"The rules folder {folder} does not exist; give a folder of NAME.yaml.")
    result = RuleSet()
    seen: dict[str, Path] = {}
    for path in rule_files(folder):
        detection, problems = check_rule(path, store)
        if detection is not None and detection.name in seen:
            problems.append(
                Problem(
                    detection.name,
                    "name",
                    f"Rule {detection.name}: the name is also used by {seen[detection.name].name}; "
                    "give each rule its own name.",
                )
            )
            detection = None
        if detection is not None:
            seen[detection.name] = path
            result.detections.append(detection)
        result.problems.extend(problems)
    return result


def load_rule(path: Path, store: LogStore) -> Detection:
    """One rule, validated on `store`; InvalidRules lists every problem it has."""
    detection, problems = check_rule(Path(path), store)
    if detection is None:
        raise InvalidRules(problems)
    return detection


def check_rule(path: Path, store: LogStore) -> tuple[Detection | None, list[Problem]]:
    """The rule at `path` (a NAME.yaml) and its problems; the Detection only when there are none."""
    rule = path.stem
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return None, [Problem(rule, "", f"Rule {rule}: cannot read {path.name} ({exc}).")]
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        return None, [
            Problem(rule, "", f"Rule {rule}: {path.name} is not valid YAML{line}; fix its syntax.")
        ]
    if not isinstance(data, dict):
        return None, [
            Problem(rule, "", f"Rule {rule}: {path.name} must be a mapping of fields to values.")
        ]
    sql = None
    if is_sigma(data):
        # A Sigma rule: its fields and SQL come from the conversion, then it is checked as any.
        # pySigma is imported only here: serve and the built-in pack never need it.
        from kandji_bridge.detections.sigma import SigmaRuleError, convert_sigma

        try:
            converted = convert_sigma(rule, path.read_text(encoding="utf-8"))
        except SigmaRuleError as exc:
            return None, [Problem(rule, "detection", str(exc))]
        data, sql = converted.values, converted.sql
    if isinstance(data.get("name"), str) and data["name"]:
        rule = data["name"]
    checker = _Fields(rule, data)
    values = checker.check(path)
    problems = checker.problems
    sql_path = path.with_name(values.get("file") or f"{path.stem}.sql")
    if sql is not None:
        sql_path = path
    elif "file" in values or "file" not in data:  # a wrong file field is reported already
        try:
            sql = sql_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            problems.append(
                Problem(
                    rule,
                    "file",
                    f"Rule {rule}: its SQL file {sql_path.name} is missing or unreadable; put the "
                    f"query in {sql_path.name} next to {path.name}.",
                )
            )
    statement = ""
    placeholders: dict[str, str] = {}
    if sql is not None:
        # None when the parameters field itself is wrong (reported already): nothing to compare.
        declared = values.get("parameters", {} if data.get("parameters") is None else None)
        placeholders, sql_problems = _check_placeholders(rule, sql_path.name, sql, declared)
        problems.extend(sql_problems)
        if not sql_problems and declared is not None:
            statement, engine_problems = _check_on_engine(store, rule, sql_path.name, sql, declared)
            problems.extend(engine_problems)
    if problems:
        return None, problems
    detection = Detection(
        name=values["name"],
        display_name=values["displayName"],
        description=values["description"],
        severity=values["severity"],
        schedule=values["schedule"],
        sql=sql or "",
        statement=statement,
        path=path,
        notes=values.get("notes", ""),
        categories=tuple(values.get("categories", ())),
        risk_score=values.get("riskScore", 0),
        mitre_attacks=tuple(values.get("mitreAttacks", ())),
        mitre_techniques=tuple(values.get("mitreTechniques", ())),
        parameters=dict(values.get("parameters", {})),
        placeholders=placeholders,
        notification_names=tuple(values.get("notificationNames", ())),
        disabled=values.get("disabled", False),
        source_types=tuple(values.get("sourceTypes", ())),
    )
    return detection, []


class _Fields:
    """Checks the YAML fields of one rule; `problems` collects one sentence per problem."""

    def __init__(self, rule: str, data: dict) -> None:
        self.rule = rule
        self.data = data
        self.problems: list[Problem] = []

    def add(self, field_name: str, sentence: str) -> None:
        self.problems.append(Problem(self.rule, field_name, f"Rule {self.rule}: {sentence}"))

    def check(self, path: Path) -> dict[str, Any]:
        data = self.data
        for key in data:
            if key not in FIELDS:
                close = difflib.get_close_matches(str(key), FIELDS, n=1)
                hint = f'did you mean "{close[0]}"?' if close else f"use {_list(FIELDS)}."
                self.add(str(key), f'unknown field "{key}"; {hint}')
        for key in REQUIRED_FIELDS:
            if key not in data or data[key] is None or data[key] == "":
                self.add(key, f'the required field "{key}" is missing.')
        values: dict[str, Any] = {}
        for key, check in (
            ("name", self._name),
            ("displayName", self._text),
            ("description", self._text),
            ("notes", self._text),
            ("severity", self._severity),
            ("schedule", self._schedule),
            ("riskScore", self._risk_score),
            ("categories", self._texts),
            ("notificationNames", self._texts),
            ("sourceTypes", self._texts),
            ("mitreAttacks", self._tactics),
            ("mitreTechniques", self._techniques),
            ("parameters", self._parameters),
            ("disabled", self._flag),
            ("file", self._file),
            ("type", self._type),
        ):
            if data.get(key) is None or (key in REQUIRED_FIELDS and data[key] == ""):
                continue
            value = check(key, data[key])
            if value is not None:
                values[key] = value
        name = values.get("name")
        if name is not None and name != path.stem:
            self.add(
                "name",
                f'name "{name}" differs from the file name {path.name}; name the files '
                f"{name}.yaml and {name}.sql.",
            )
            values.pop("name")
        return values

    def _name(self, key: str, value: Any) -> str | None:
        if isinstance(value, str) and _NAME.fullmatch(value):
            return value
        self.add(
            key, f"name {value!r} must be letters, digits, '-', '_' or '.' ({NAME_MAX} at most)."
        )
        return None

    def _text(self, key: str, value: Any) -> str | None:
        if isinstance(value, str):
            return value.strip()
        self.add(key, f'field "{key}" must be text, not {_kind(value)}.')
        return None

    def _severity(self, key: str, value: Any) -> str | None:
        for word in SEVERITIES:
            if isinstance(value, str) and value.strip().lower() == word.lower():
                return word
        self.add(key, f"severity {_show(value)} is not one of {_list(SEVERITIES)}.")
        return None

    def _schedule(self, key: str, value: Any) -> str | None:
        if isinstance(value, str) and schedule_is_valid(value.strip()):
            return value.strip()
        self.add(
            key,
            f"schedule {_show(value)} is neither a cron expression of five fields (such as "
            '"*/15 * * * *") nor an interval (such as "@15m" or "@1h").',
        )
        return None

    def _risk_score(self, key: str, value: Any) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100:
            return value
        self.add(key, f"riskScore {_show(value)} must be a whole number from 0 to 100.")
        return None

    def _texts(self, key: str, value: Any) -> list[str] | None:
        if isinstance(value, list) and all(isinstance(item, str) and item for item in value):
            return value
        self.add(key, f'field "{key}" must be a list of words, not {_kind(value)}.')
        return None

    def _tactics(self, key: str, value: Any) -> list[str] | None:
        return self._ids(key, value, _TACTIC, "tactic IDs such as TA0003")

    def _techniques(self, key: str, value: Any) -> list[str] | None:
        return self._ids(key, value, _TECHNIQUE, "technique IDs such as T1098 or T1078.004")

    def _ids(self, key: str, value: Any, pattern: re.Pattern, what: str) -> list[str] | None:
        items = value if isinstance(value, list) else [value]
        bad = [item for item in items if not (isinstance(item, str) and pattern.fullmatch(item))]
        if not isinstance(value, list) or bad:
            shown = _show(bad[0]) if bad else _kind(value)
            self.add(key, f"{key} must list MITRE ATT&CK {what}; {shown} is not one.")
            return None
        return value

    def _parameters(self, key: str, value: Any) -> dict[str, str] | None:
        if not isinstance(value, dict):
            self.add(key, f"parameters must map names to values, not {_kind(value)}.")
            return None
        out: dict[str, str] = {}
        for name, item in value.items():
            if not isinstance(name, str) or not _PARAMETER_NAME.fullmatch(name):
                self.add(
                    key,
                    f"parameter name {_show(name)} must be a letter, then letters, digits or _.",
                )
            elif name in WINDOW_PLACEHOLDERS:
                self.add(key, f'parameter "{name}" is reserved: every run binds it to its window.')
            elif isinstance(item, bool) or not isinstance(item, str | int | float):
                self.add(
                    key,
                    f'parameter "{name}" must have a text or number value, not {_kind(item)} '
                    "(write a list as text, such as \"['a', 'b']\").",
                )
            else:
                out[name] = str(item)
        return out if len(out) == len(value) else None

    def _flag(self, key: str, value: Any) -> bool | None:
        if isinstance(value, bool):
            return value
        self.add(key, f"disabled {_show(value)} must be true or false.")
        return None

    def _file(self, key: str, value: Any) -> str | None:
        if isinstance(value, str) and value.endswith(".sql") and Path(value).name == value:
            return value
        self.add(key, f"file {_show(value)} must name a .sql file next to the rule's YAML.")
        return None

    def _type(self, key: str, value: Any) -> str | None:
        if value == "sql":
            return value
        self.add(key, f'type {_show(value)} is not supported; only "sql" rules run here.')
        return None


def is_sigma(data: Any) -> bool:
    """Whether a parsed YAML file is a Sigma rule rather than a RunReveal rule's fields."""
    return isinstance(data, dict) and "detection" in data and "logsource" in data


def _check_placeholders(
    rule: str, sql_file: str, sql: str, declared: dict[str, str] | None
) -> tuple[dict[str, str], list[Problem]]:
    problems: list[Problem] = []

    def add(field_name: str, sentence: str) -> None:
        problems.append(Problem(rule, field_name, f"Rule {rule}: {sentence}"))

    code = _NOT_CODE.sub(" ", sql)
    if not code.strip():
        add("file", f"{sql_file} is empty; write the rule's SELECT there.")
        return {}, problems
    placeholders: dict[str, str] = {}
    for name, type_ in _PLACEHOLDER.findall(code):
        type_ = " ".join(type_.split())
        if placeholders.setdefault(name, type_) != type_:
            add(
                "parameters",
                f"the SQL reads {{{name}}} as both {placeholders[name]} and {type_}; use one type.",
            )
    if not (_WINDOW_FROM.search(code) and _WINDOW_TO.search(code)):
        add("file", f"{sql_file} must select its window with {WINDOW_SENTENCE}.")
    for name, type_ in WINDOW_PLACEHOLDERS.items():
        if name in placeholders and placeholders[name] != type_:
            add("file", f"{sql_file} must read {{{name}}} as {type_}, not {placeholders[name]}.")
    if declared is None:
        return placeholders, problems
    for name in placeholders:
        if name not in WINDOW_PLACEHOLDERS and name not in declared:
            add(
                "parameters",
                f"the SQL's placeholder {{{name}:{placeholders[name]}}} is not declared; add "
                f"{name} with a default value under parameters.",
            )
    for name in declared:
        if name not in placeholders:
            add(
                "parameters",
                f'parameter "{name}" is declared but {sql_file} has no {{{name}:Type}} '
                "placeholder for it; use it in the SQL or remove it.",
            )
    return placeholders, problems


def _check_on_engine(
    store: LogStore, rule: str, sql_file: str, sql: str, parameters: Mapping[str, str]
) -> tuple[str, list[Problem]]:
    """The engine's rendering of the SQL, once it parses, only reads and plans on kandji_logs."""
    bound = {**_SAMPLE_WINDOW, **parameters}

    def problem(field_name: str, sentence: str) -> tuple[str, list[Problem]]:
        return "", [Problem(rule, field_name, f"Rule {rule}: {sentence}")]

    try:
        checked = check_read_only(lambda statement: store.query(statement, params=bound), sql)
        if checked.kind != "SELECT":
            return problem("file", f"{sql_file} must be a SELECT, not {checked.kind}.")
        store.query(f"EXPLAIN PLAN {checked.sql}", params=bound)
    except (QueryRefused, LogStoreError) as exc:
        said = str(exc).removeprefix("The log store refused the query: ")
        message = engine_sentence(said.removeprefix("The query is not valid SQL: "))
        bad = _BAD_PARAMETER.search(str(exc))
        if bad and bad.group(1) in parameters:
            name = bad.group(1)
            return problem(
                "parameters",
                f'parameter "{name}" value {parameters[name]!r} cannot be read as the SQL\'s '
                f"type for it: {_lower_first(message)}",
            )
        if isinstance(exc, QueryRefused):
            return problem("file", f"{sql_file} is refused: {_lower_first(str(exc))}")
        return problem("file", f"{sql_file} does not run on kandji_logs: {message}")
    return checked.sql, []


def schedule_is_valid(schedule: str) -> bool:
    """A five-field cron expression, a cron alias (@hourly), or an interval (@30s, @15m, @1h)."""
    interval = _INTERVAL.fullmatch(schedule)
    if interval:
        return int(interval.group(1)) > 0
    if schedule.startswith("@"):
        return schedule in CRON_ALIASES
    return len(schedule.split()) == 5 and croniter.is_valid(schedule)


def next_run(schedule: str, after: datetime) -> datetime:
    """When a valid schedule fires next after `after` (UTC); intervals align to the epoch."""
    after = after.astimezone(UTC)
    interval = _INTERVAL.fullmatch(schedule)
    if interval:
        step = int(interval.group(1)) * INTERVAL_UNITS[interval.group(2)]
        seconds = (int(after.timestamp()) // step + 1) * step
        return datetime.fromtimestamp(seconds, UTC)
    return croniter(schedule, after).get_next(datetime).astimezone(UTC)


def previous_run(schedule: str, at: datetime) -> datetime:
    """The latest time a valid schedule fires at or before `at` (UTC, whole seconds)."""
    at = at.astimezone(UTC).replace(microsecond=0)
    interval = _INTERVAL.fullmatch(schedule)
    if interval:
        step = int(interval.group(1)) * INTERVAL_UNITS[interval.group(2)]
        return datetime.fromtimestamp(int(at.timestamp()) // step * step, UTC)
    # croniter's get_prev is strictly before where it starts.
    return croniter(schedule, at + timedelta(seconds=1)).get_prev(datetime).astimezone(UTC)


def schedule_period(schedule: str, at: datetime) -> timedelta:
    """The time from one run to the next around `at`: the window a run covers."""
    first = next_run(schedule, at)
    return next_run(schedule, first) - first


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _list(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:57]}..."'
    return _kind(value) if isinstance(value, dict | list) else repr(value)


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "text"
    return "a number" if isinstance(value, int | float) else type(value).__name__
