"""Sigma rules for Kandji's audit events, converted through pySigma into a pack rule's SQL.

A Sigma rule with `logsource: {product: kandji, service: audit}` names Kandji's own API fields
(`action`, `actor_type`, `target_type`, `new_state.owner_email`, ...). `FIELDS` maps each to the
`kandji_logs` column `logs/normalize.py` stores it in; the table's own column names work too
(`eventName`, `srcIP`, `readOnly`, `actor.email` for a key of the `actor` map). The conversion
gives the same SQL shape as a hand-written rule:

    SELECT * FROM kandji_logs
    WHERE receivedAt >= {from:DateTime} AND receivedAt < {to:DateTime} AND (<detection>)
    ORDER BY eventTime

and the SQL is then validated like any rule's, so loading a Sigma file gives the same `Detection`.

Our own backend, not pySigma's ClickHouse backend from PyPI (docs/detections.md says why):
Sigma compares strings without regard to case, so every string match here is an `ILIKE` (the
PyPI backend writes `=` and `IN`, which are case-sensitive); a field that exists is a non-empty
column, a key of a map, or a key of the `new_state` / `metadata` JSON (our columns are never
NULL, so `isNotNull` is always true).
"""

# "token" is pySigma's word for an SQL keyword, not a secret.
# ruff: noqa: S105

import re
from dataclasses import dataclass
from typing import Any, ClassVar

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
)
from sigma.conversion.base import TextQueryBackend
from sigma.conversion.state import ConversionState
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.modifiers import (
    SigmaAllModifier,
    SigmaCaseSensitiveModifier,
    SigmaCIDRModifier,
    SigmaCompareModifier,
    SigmaContainsModifier,
    SigmaEndswithModifier,
    SigmaExistsModifier,
    SigmaRegularExpressionFlagModifier,
    SigmaRegularExpressionModifier,
    SigmaStartswithModifier,
    modifier_mapping,
)
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import CompareOperators

from kandji_bridge.logs.schema import COLUMNS, LOGS_TABLE

PRODUCT = "kandji"
SERVICE = "audit"
DEFAULT_SCHEDULE = "*/15 * * * *"
# Sigma's levels in RunReveal's severities, and the risk score a rule gets unless it sets one.
LEVELS = {
    "informational": ("Low", 10),
    "low": ("Low", 25),
    "medium": ("Medium", 50),
    "high": ("High", 75),
    "critical": ("Critical", 90),
}
# Kandji's audit-event fields (as the API names them) -> the kandji_logs column holding each.
FIELDS = {
    "id": "kandjiEventId",
    "action": "action",
    "occurred_at": "occurredAt",
    "actor_id": "actorId",
    "actor_type": "actorType",
    "target_id": "targetId",
    "target_type": "targetType",
    "target_component": "targetComponent",
    "new_state": "newState",
    "metadata": "metadata",
}
# Keys inside these API fields are read from the JSON text the column keeps.
JSON_FIELDS = {"new_state": "newState", "metadata": "metadata"}
_COLUMN_TYPES = dict(COLUMNS)
_MAP_COLUMNS = tuple(name for name, type_ in COLUMNS if type_.startswith("Map("))
_KEY = re.compile(r"[A-Za-z0-9_\-]+")
SUPPORTED_MODIFIERS = (
    SigmaContainsModifier,
    SigmaStartswithModifier,
    SigmaEndswithModifier,
    SigmaAllModifier,
    SigmaExistsModifier,
    SigmaCIDRModifier,
    SigmaCompareModifier,
    SigmaRegularExpressionModifier,
    SigmaRegularExpressionFlagModifier,
    SigmaCaseSensitiveModifier,
)
SUPPORTED_MODIFIER_WORDS = (
    "contains, startswith, endswith, all, exists, cidr, gt, gte, lt, lte, re (with i, m, s) "
    "and cased"
)


class SigmaRuleError(ValueError):
    """A Sigma rule that cannot become a detection; str() is one sentence naming the rule."""


@dataclass(frozen=True)
class Column:
    """Where a Sigma field lives in kandji_logs: an SQL expression, and how to test it exists."""

    sql: str
    exists: str


def field_column(field: str) -> Column | None:
    """The kandji_logs expression for a Sigma field name, or None when there is none."""
    if field in FIELDS:
        column = FIELDS[field]
        return Column(f"`{column}`", f"`{column}` != ''")
    head, _, rest = field.partition(".")
    if rest and head in JSON_FIELDS and all(_KEY.fullmatch(key) for key in rest.split(".")):
        path = ", ".join(f"'{key}'" for key in rest.split("."))
        column = JSON_FIELDS[head]
        return Column(f"JSONExtractString(`{column}`, {path})", f"JSONHas(`{column}`, {path})")
    if rest and head in _MAP_COLUMNS and _KEY.fullmatch(rest):
        return Column(f"`{head}`['{rest}']", f"mapContains(`{head}`, '{rest}')")
    type_ = _COLUMN_TYPES.get(field)
    if type_ is None:
        return None
    if type_ == "String":
        return Column(f"`{field}`", f"`{field}` != ''")
    if type_.startswith(("Map(", "Array(")):
        return Column(f"`{field}`", f"notEmpty(`{field}`)")
    return Column(f"`{field}`", "true")  # numbers and readOnly always hold a value


class KandjiSigmaBackend(TextQueryBackend):
    """pySigma's text backend, writing ClickHouse conditions over kandji_logs' columns."""

    name: ClassVar[str] = "kandji-bridge ClickHouse (kandji_logs)"
    formats: ClassVar[dict[str, str]] = {"default": "A WHERE condition over kandji_logs"}
    requires_pipeline: ClassVar[bool] = False

    precedence: ClassVar = (ConditionNOT, ConditionAND, ConditionOR)
    parenthesize: bool = True
    group_expression: ClassVar[str] = "({expr})"
    token_separator: str = " "
    or_token: ClassVar[str] = "OR"
    and_token: ClassVar[str] = "AND"
    not_token: ClassVar[str] = "NOT"
    eq_token: ClassVar[str] = " = "

    str_quote: ClassVar[str] = "'"
    escape_char: ClassVar[str] = "\\"
    wildcard_multi: ClassVar[str] = "%"
    wildcard_single: ClassVar[str] = "_"
    add_escaped: ClassVar[str] = "\\"
    bool_values: ClassVar[dict[bool, str]] = {True: "true", False: "false"}

    # Sigma matches strings whatever their case. contains / startswith / endswith arrive as
    # wildcards (`*token*`), which become LIKE's `%`; a literal % or _ is escaped.
    eq_expression: ClassVar[str] = "{field} ILIKE {value}"
    wildcard_match_expression: ClassVar[str] = "{field} ILIKE {value}"
    case_sensitive_match_expression: ClassVar[str] = "{field} LIKE {value}"

    re_expression: ClassVar[str] = "match({field}, '{regex}')"
    re_escape_char: ClassVar[str] = "\\"
    re_escape: ClassVar[tuple[str, ...]] = ("'",)
    re_escape_escape_char: bool = True
    re_flag_prefix: bool = True

    compare_op_expression: ClassVar[str] = "{field} {operator} {value}"
    compare_operators: ClassVar = {
        CompareOperators.LT: "<",
        CompareOperators.LTE: "<=",
        CompareOperators.GT: ">",
        CompareOperators.GTE: ">=",
    }
    field_null_expression: ClassVar[str] = "{field} = ''"
    convert_or_as_in: ClassVar[bool] = False
    convert_and_as_in: ClassVar[bool] = False

    def escape_and_quote_field(self, field_name: str) -> str:
        column = field_column(field_name)
        if column is None:  # checked before conversion; kept for a field a modifier adds
            raise SigmaRuleError(f'the field "{field_name}" is not a Kandji audit field')
        return column.sql

    def convert_condition_field_eq_val_cidr(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        # An empty or malformed address is no match, not an error of the whole query.
        field = self.escape_and_quote_field(cond.field)
        network = cond.value.network
        return (
            f"((isIPv4String({field}) OR isIPv6String({field})) "
            f"AND isIPAddressInRange({field}, '{network}'))"
        )

    def convert_condition_field_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return _exists(cond.field)

    def convert_condition_field_not_exists(
        self, cond: ConditionFieldEqualsValueExpression, state: ConversionState
    ) -> str:
        return f"NOT ({_exists(cond.field)})"


def _exists(field: str) -> str:
    column = field_column(field)
    if column is None:
        raise SigmaRuleError(f'the field "{field}" is not a Kandji audit field')
    return column.exists


@dataclass(frozen=True)
class SigmaConversion:
    """A Sigma rule's RunReveal fields and its SQL, ready for the rules' validation."""

    values: dict[str, Any]
    sql: str


def convert_sigma(name: str, text: str) -> SigmaConversion:
    """The fields and SQL of the Sigma rule `text` (file stem `name`); SigmaRuleError if it has
    a logsource, field or modifier we cannot run."""
    try:
        rule = SigmaRule.from_yaml(text)
    except SigmaError as exc:
        raise SigmaRuleError(f"Sigma rule {name}: {_sentence(exc)}") from None
    if isinstance(rule, SigmaCorrelationRule):
        raise SigmaRuleError(f"Sigma rule {name}: correlation rules are not supported.")
    _check_logsource(name, rule)
    for detection in rule.detection.detections.values():
        _check_items(name, detection)
    backend = KandjiSigmaBackend()
    try:
        queries = backend.convert_rule(rule)
    except SigmaRuleError as exc:
        raise SigmaRuleError(f"Sigma rule {name}: {exc}; use {_field_words()}.") from None
    except (SigmaError, NotImplementedError) as exc:
        raise SigmaRuleError(f"Sigma rule {name} cannot be converted: {_sentence(exc)}") from None
    if len(queries) != 1:
        raise SigmaRuleError(f"Sigma rule {name}: it converts to {len(queries)} queries, not one.")
    sql = (
        f"SELECT *\nFROM {LOGS_TABLE}\nWHERE receivedAt >= {{from:DateTime}}\n"
        f"  AND receivedAt < {{to:DateTime}}\n  AND ({queries[0]})\nORDER BY eventTime\n"
    )
    return SigmaConversion(_values(name, rule), sql)


def _values(name: str, rule: SigmaRule) -> dict[str, Any]:
    """The RunReveal fields of a Sigma rule: title, description, level, tags, and the custom
    `schedule`, `riskScore`, `notificationNames` and `disabled` a rule may add."""
    custom = dict(rule.custom_attributes or {})
    level = rule.level.name.lower() if rule.level is not None else "medium"
    severity, risk = LEVELS[level]
    tactics, techniques, categories = [], [], [PRODUCT]
    for tag in rule.tags:
        if tag.namespace == "attack" and re.fullmatch(r"ta\d{4}", tag.name):
            tactics.append(tag.name.upper())
        elif tag.namespace == "attack" and re.fullmatch(r"t\d{4}(\.\d{3})?", tag.name):
            techniques.append(tag.name.upper())
        elif tag.namespace != "attack":
            categories.append(tag.name)
    values: dict[str, Any] = {
        "name": name,
        "displayName": rule.title,
        "description": (rule.description or rule.title).strip(),
        "severity": severity,
        "riskScore": custom.get("riskScore", risk),
        "schedule": custom.get("schedule", DEFAULT_SCHEDULE),
        "categories": categories,
        "mitreAttacks": tactics,
        "mitreTechniques": techniques,
        "sourceTypes": [PRODUCT],
        "notes": "\n".join(str(item) for item in rule.falsepositives or ()),
    }
    for key in ("notificationNames", "disabled"):
        if key in custom:
            values[key] = custom[key]
    return values


def _check_logsource(name: str, rule: SigmaRule) -> None:
    source = rule.logsource
    if (source.product, source.service) != (PRODUCT, SERVICE) or source.category is not None:
        got = ", ".join(
            f"{key}: {value}"
            for key, value in (
                ("product", source.product),
                ("service", source.service),
                ("category", source.category),
            )
            if value is not None
        )
        raise SigmaRuleError(
            f"Sigma rule {name}: logsource {{{got or 'empty'}}} is not supported; kandji-bridge "
            f"runs rules for logsource {{product: {PRODUCT}, service: {SERVICE}}}."
        )


def _check_items(name: str, detection: SigmaDetection) -> None:
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            _check_items(name, item)
            continue
        _check_item(name, item)


def _check_item(name: str, item: SigmaDetectionItem) -> None:
    if item.field is None:
        raise SigmaRuleError(
            f"Sigma rule {name}: keyword searches (values without a field) are not supported; "
            "name the field each value is matched on."
        )
    if field_column(item.field) is None:
        raise SigmaRuleError(
            f'Sigma rule {name}: the field "{item.field}" is not a Kandji audit field; use '
            f"{_field_words()}."
        )
    for modifier in item.modifiers:
        if not issubclass(modifier, SUPPORTED_MODIFIERS):
            word = _modifier_word(modifier)
            raise SigmaRuleError(
                f'Sigma rule {name}: the modifier "{word}" on "{item.field}" is not supported; '
                f"use {SUPPORTED_MODIFIER_WORDS}."
            )


def _modifier_word(modifier: type) -> str:
    for word, cls in modifier_mapping.items():
        if cls is modifier:
            return word
    return modifier.__name__


def _field_words() -> str:
    return (
        "Kandji's fields ("
        + ", ".join(FIELDS)
        + ", new_state.KEY, metadata.KEY) or a kandji_logs column (actor.KEY, tags.KEY for a key "
        "of those maps)"
    )


def _sentence(exc: Exception) -> str:
    text = str(exc).strip().split("\n")[0]
    text = re.sub(r"\s*\(rule.*\)$", "", text)
    return text.rstrip(".") + "."
