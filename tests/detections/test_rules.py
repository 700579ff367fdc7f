"""Validation: each kind of malformed rule gets one sentence naming the rule and the field."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from kandji_bridge.detections.rules import (
    NAME_MAX,
    InvalidRules,
    load_rule,
    load_rules,
    next_run,
    previous_run,
    schedule_is_valid,
)
from kandji_bridge.logs.store import ChdbLogStore

GOOD_SQL = (
    "SELECT * FROM kandji_logs\n"
    "WHERE receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}\n"
    "  AND targetType = {targetType:String}\n"
)


def good_fields(name: str = "test-rule") -> dict[str, Any]:
    return {
        "name": name,
        "displayName": "Kandji Test Rule",
        "description": "A rule for the tests.",
        "severity": "High",
        "schedule": "*/15 * * * *",
        "riskScore": 60,
        "mitreAttacks": ["TA0003"],
        "parameters": {"targetType": "api_token"},
    }


def write_rule(
    folder: Path, fields: dict[str, Any], sql: str | None = GOOD_SQL, name: str = "test-rule"
) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(fields, sort_keys=False))
    if sql is not None:
        (folder / f"{name}.sql").write_text(sql)
    return path


def problems_of(store: ChdbLogStore, path: Path) -> list[str]:
    with pytest.raises(InvalidRules) as raised:
        load_rule(path, store)
    return [str(p) for p in raised.value.problems]


def test_a_good_rule_loads_with_its_fields(store: ChdbLogStore, tmp_path: Path) -> None:
    fields = good_fields() | {"severity": "medium", "notes": "n", "disabled": True}
    detection = load_rule(write_rule(tmp_path, fields), store)
    assert detection.name == "test-rule"
    assert detection.severity == "Medium"  # RunReveal's own packs write it in lower case too
    assert detection.parameters == {"targetType": "api_token"}
    assert detection.placeholders == {"from": "DateTime", "to": "DateTime", "targetType": "String"}
    assert detection.disabled is True
    assert "{from:DateTime}" in detection.statement  # the engine's rendering keeps placeholders


def test_unknown_field(store: ChdbLogStore, tmp_path: Path) -> None:
    path = write_rule(tmp_path, good_fields() | {"severty": "High"})
    assert problems_of(store, path) == [
        'Rule test-rule: unknown field "severty"; did you mean "severity"?'
    ]


def test_missing_required_field(store: ChdbLogStore, tmp_path: Path) -> None:
    fields = good_fields()
    del fields["schedule"]
    path = write_rule(tmp_path, fields)
    assert problems_of(store, path) == ['Rule test-rule: the required field "schedule" is missing.']


def test_bad_severity(store: ChdbLogStore, tmp_path: Path) -> None:
    path = write_rule(tmp_path, good_fields() | {"severity": "Severe"})
    assert problems_of(store, path) == [
        'Rule test-rule: severity "Severe" is not one of Low, Medium, High or Critical.'
    ]


@pytest.mark.parametrize("schedule", ["61 * * * *", "every 15 minutes", "@0m", "@15x", "* * * *"])
def test_bad_schedule(store: ChdbLogStore, tmp_path: Path, schedule: str) -> None:
    path = write_rule(tmp_path, good_fields() | {"schedule": schedule})
    assert problems_of(store, path) == [
        f'Rule test-rule: schedule "{schedule}" is neither a cron expression of five fields '
        '(such as "*/15 * * * *") nor an interval (such as "@15m" or "@1h").'
    ]


def test_parameter_without_placeholder(store: ChdbLogStore, tmp_path: Path) -> None:
    fields = good_fields()
    fields["parameters"] = {"targetType": "api_token", "window": "30"}
    path = write_rule(tmp_path, fields)
    assert problems_of(store, path) == [
        'Rule test-rule: parameter "window" is declared but test-rule.sql has no {window:Type} '
        "placeholder for it; use it in the SQL or remove it."
    ]


def test_undeclared_placeholder(store: ChdbLogStore, tmp_path: Path) -> None:
    sql = GOOD_SQL + "  AND actorId != {ignoreActor:String}\n"
    path = write_rule(tmp_path, good_fields(), sql)
    assert problems_of(store, path) == [
        "Rule test-rule: the SQL's placeholder {ignoreActor:String} is not declared; add "
        "ignoreActor with a default value under parameters."
    ]


def test_placeholder_in_a_string_literal_is_not_a_placeholder(
    store: ChdbLogStore, tmp_path: Path
) -> None:
    sql = GOOD_SQL + "  AND action != '{notAParameter:String}' -- nor {thisOne:String}\n"
    assert load_rule(write_rule(tmp_path, good_fields(), sql), store).name == "test-rule"


@pytest.mark.parametrize(
    ("sql", "sentence"),
    [
        (
            GOOD_SQL + "; DROP TABLE kandji_logs",
            "the text holds more than one statement; run one statement at a time.",
        ),
        (
            "INSERT INTO kandji_logs (id) SELECT id FROM kandji_logs WHERE receivedAt >= "
            "{from:DateTime} AND receivedAt < {to:DateTime} AND targetType = {targetType:String}",
            "INSERT statements cannot run here: queries here only read (SELECT, WITH, SHOW, "
            "DESCRIBE, EXPLAIN, EXISTS).",
        ),
        (
            GOOD_SQL + "  AND rawLog != file('/etc/passwd')",
            "the function file() reads files on the server and cannot run here; query "
            "kandji_logs instead.",
        ),
    ],
    ids=["two statements", "insert", "file function"],
)
def test_sql_refused_by_the_read_only_guard(
    store: ChdbLogStore, tmp_path: Path, sql: str, sentence: str
) -> None:
    path = write_rule(tmp_path, good_fields(), sql)
    assert problems_of(store, path) == [f"Rule test-rule: test-rule.sql is refused: {sentence}"]
    assert store.count() == 0  # the table is still there, untouched: nothing of it ran


def test_sql_that_does_not_parse(store: ChdbLogStore, tmp_path: Path) -> None:
    sql = GOOD_SQL + "  AND (action = 'delete'"
    [problem] = problems_of(store, write_rule(tmp_path, good_fields(), sql))
    assert problem.startswith(
        "Rule test-rule: test-rule.sql is refused: the query is not valid SQL:"
    )


def test_sql_naming_a_column_kandji_logs_lacks(store: ChdbLogStore, tmp_path: Path) -> None:
    sql = GOOD_SQL + "  AND user_email = 'a@example.com'"
    [problem] = problems_of(store, write_rule(tmp_path, good_fields(), sql))
    assert problem.startswith("Rule test-rule: test-rule.sql does not run on kandji_logs: ")
    assert "user_email" in problem


@pytest.mark.parametrize(
    "where",
    [
        "eventTime >= {from:DateTime} AND eventTime < {to:DateTime}",
        "receivedAt >= now() - INTERVAL 15 MINUTE",
        "receivedAt > {from:DateTime} AND receivedAt <= {to:DateTime}",
    ],
    ids=["eventTime", "no placeholders", "overlapping bounds"],
)
def test_sql_without_the_received_at_window(
    store: ChdbLogStore, tmp_path: Path, where: str
) -> None:
    sql = f"SELECT * FROM kandji_logs WHERE {where} AND targetType = {{targetType:String}}"  # noqa: S608
    assert problems_of(store, write_rule(tmp_path, good_fields(), sql)) == [
        "Rule test-rule: test-rule.sql must select its window with "
        "receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime}."
    ]


def test_parameter_value_not_of_its_type(store: ChdbLogStore, tmp_path: Path) -> None:
    fields = good_fields() | {"parameters": {"targetType": "api_token", "threshold": "ten"}}
    sql = GOOD_SQL + "  AND length(resources) < {threshold:UInt32}"
    [problem] = problems_of(store, write_rule(tmp_path, fields, sql))
    assert problem.startswith(
        "Rule test-rule: parameter \"threshold\" value 'ten' cannot be read as the SQL's type "
        "for it: "
    )
    assert "UInt32" in problem


def test_name_differs_from_the_file_name(store: ChdbLogStore, tmp_path: Path) -> None:
    path = write_rule(tmp_path, good_fields(name="other-name"))
    assert problems_of(store, path) == [
        'Rule other-name: name "other-name" differs from the file name test-rule.yaml; name the '
        "files other-name.yaml and other-name.sql."
    ]


def test_missing_sql_file(store: ChdbLogStore, tmp_path: Path) -> None:
    path = write_rule(tmp_path, good_fields(), sql=None)
    assert problems_of(store, path) == [
        "Rule test-rule: its SQL file test-rule.sql is missing or unreadable; put the query in "
        "test-rule.sql next to test-rule.yaml."
    ]


def test_yaml_that_does_not_parse(store: ChdbLogStore, tmp_path: Path) -> None:
    path = tmp_path / "test-rule.yaml"
    path.write_text("name: test-rule\nseverity: [High\n")
    [problem] = problems_of(store, path)
    assert problem.startswith("Rule test-rule: test-rule.yaml is not valid YAML at line ")


@pytest.mark.parametrize(
    ("field", "value", "sentence"),
    [
        ("riskScore", 150, "riskScore 150 must be a whole number from 0 to 100."),
        (
            "mitreAttacks",
            ["persistence"],
            'mitreAttacks must list MITRE ATT&CK tactic IDs such as TA0003; "persistence" is '
            "not one.",
        ),
        ("disabled", "no", 'disabled "no" must be true or false.'),
        ("categories", "kandji", 'field "categories" must be a list of words, not text.'),
    ],
)
def test_badly_typed_optional_fields(
    store: ChdbLogStore, tmp_path: Path, field: str, value: Any, sentence: str
) -> None:
    path = write_rule(tmp_path, good_fields() | {field: value})
    assert problems_of(store, path) == [f"Rule test-rule: {sentence}"]


def test_every_problem_of_a_rule_is_reported_at_once(store: ChdbLogStore, tmp_path: Path) -> None:
    fields = good_fields() | {"severity": "Severe", "schedule": "soon", "colour": "red"}
    assert len(problems_of(store, write_rule(tmp_path, fields))) == 3


def test_a_folder_keeps_its_good_rules_and_reports_the_bad(
    store: ChdbLogStore, tmp_path: Path
) -> None:
    write_rule(tmp_path, good_fields())
    write_rule(tmp_path, good_fields("bad-rule") | {"severity": "Severe"}, name="bad-rule")
    loaded = load_rules(tmp_path, store)
    assert [d.name for d in loaded.detections] == ["test-rule"]
    assert [str(p) for p in loaded.problems] == [
        'Rule bad-rule: severity "Severe" is not one of Low, Medium, High or Critical.'
    ]


@pytest.mark.parametrize("schedule", ["*/15 * * * *", "0 * * * *", "@15m", "@1h", "@1d", "@daily"])
def test_schedules_runreveal_writes_are_valid(schedule: str) -> None:
    assert schedule_is_valid(schedule)


def test_next_run_of_an_interval_and_a_cron_schedule() -> None:
    at = datetime(2025, 3, 6, 9, 7, 30, tzinfo=UTC)
    assert next_run("@15m", at) == datetime(2025, 3, 6, 9, 15, tzinfo=UTC)
    assert next_run("*/15 * * * *", at) == datetime(2025, 3, 6, 9, 15, tzinfo=UTC)
    assert next_run("@1h", at) == datetime(2025, 3, 6, 10, 0, tzinfo=UTC)


def test_an_interval_in_seconds_fires_on_its_multiples_of_the_epoch() -> None:
    """The demo runs the pack every 30 seconds, so its alerts show within two minutes."""
    at = datetime(2025, 3, 6, 9, 7, 30, tzinfo=UTC)
    assert schedule_is_valid("@30s")
    assert next_run("@30s", at) == datetime(2025, 3, 6, 9, 8, tzinfo=UTC)
    assert previous_run("@30s", datetime(2025, 3, 6, 9, 7, 59, tzinfo=UTC)) == at


def test_a_malformed_parameters_field_is_one_problem(store: ChdbLogStore, tmp_path: Path) -> None:
    path = write_rule(tmp_path, good_fields() | {"parameters": ["targetType"]})
    assert problems_of(store, path) == [
        "Rule test-rule: parameters must map names to values, not a list."
    ]


def test_a_name_longer_than_its_job_key_allows(store: ChdbLogStore, tmp_path: Path) -> None:
    name = "a" * (NAME_MAX + 1)
    path = write_rule(tmp_path, good_fields(name=name), name=name)
    assert problems_of(store, path) == [
        f"Rule {name}: name {name!r} must be letters, digits, '-', '_' or '.' (90 at most)."
    ]
