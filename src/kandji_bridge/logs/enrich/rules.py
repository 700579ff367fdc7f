"""Custom enrichment rules (KANDJI_BRIDGE_ENRICHMENT_RULES), as RunReveal's enrichments.

Custom rules follow RunReveal's enrichments: a named rule set has a field `path` and rules of type
`exact`, `regex` (a search anywhere in the value) or `cidr`, each with a `data` object. Every rule
that matches appends `(data, name, provider, "custom", value)` to the row's `enrichments`, where
`value` is the field value that matched. The rules file is JSON, the shape RunReveal's API takes:

    [{"name": "vip-admins", "path": "actor.email", "provider": "custom",
      "rules": [{"type": "exact", "pattern": "ceo@example.com", "data": {"tier": "vip"}}]}]

(or `{"enrichments": [...]}`). A path is a column ("srcIP", "actorId", "eventName"), a key of a
map column ("actor.email", "tags.target_name"), a key inside the event's `metadata` / `new_state`
("metadata.user_agent", "newState.name"), or any dotted path into the event as Kandji sent it
("target_type"). RunReveal's "normalized." prefix is accepted and ignored.
"""

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kandji_bridge.logs.enrich.ip import EnrichmentError, ip_object
from kandji_bridge.logs.normalize import OMITTED_DEFAULTS, Row
from kandji_bridge.logs.schema import COLUMN_NAMES

ENV_RULES = "KANDJI_BRIDGE_ENRICHMENT_RULES"
RULE_TYPES = ("exact", "regex", "cidr")
DEFAULT_PROVIDER = "custom"


@dataclass(frozen=True)
class Rule:
    type: str
    pattern: str
    data: dict[str, str]


@dataclass
class RuleSet:
    """One named enrichment: where to read the value, and the rules to try on it."""

    name: str
    path: str
    rules: tuple[Rule, ...]
    provider: str = DEFAULT_PROVIDER
    _read: "Reader" = field(init=False, repr=False)
    _exact: dict[str, list[Rule]] = field(init=False, repr=False)
    _regexes: list[tuple[re.Pattern[str], Rule]] = field(init=False, repr=False)
    _networks: list[tuple[Any, Rule]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._read = _path_reader(self.path, self.name)
        self._exact, self._regexes, self._networks = {}, [], []
        for number, rule in enumerate(self.rules, start=1):
            where = f"enrichment {self.name!r} rule {number}"
            if rule.type == "exact":
                self._exact.setdefault(rule.pattern, []).append(rule)
            elif rule.type == "regex":
                try:
                    self._regexes.append((re.compile(rule.pattern), rule))
                except re.error as exc:
                    raise EnrichmentError(
                        f"The {where} has an invalid regex {rule.pattern!r} ({exc})."
                    ) from exc
            elif rule.type == "cidr":
                try:
                    self._networks.append((ipaddress.ip_network(rule.pattern, strict=False), rule))
                except ValueError as exc:
                    raise EnrichmentError(
                        f"The {where} has an invalid CIDR {rule.pattern!r}; "
                        "write it like 10.0.0.0/8 or 2001:db8::/32."
                    ) from exc
            else:
                raise EnrichmentError(
                    f"The {where} has type {rule.type!r}; use exact, regex or cidr."
                )

    def apply(self, row: Row, event: Mapping[str, Any] | None) -> None:
        for value in self._read(row, event):
            for rule in self.matching(value):
                row.setdefault("enrichments", []).append(
                    (rule.data, self.name, self.provider, "custom", value)
                )

    def matching(self, value: str) -> list[Rule]:
        matched = list(self._exact.get(value, ()))
        for regex, rule in self._regexes:
            if regex.search(value):
                matched.append(rule)
        if self._networks:
            address = ip_object(value)
            if address is not None:
                for network, rule in self._networks:
                    if address.version == network.version and address in network:
                        matched.append(rule)
        return matched


_MAP_COLUMNS = frozenset({"actor", "tags"})
_JSON_COLUMNS = {"metadata": "metadata", "newState": "new_state", "new_state": "new_state"}
_COLUMNS = frozenset(COLUMN_NAMES)

Reader = Callable[[Row, Mapping[str, Any] | None], list[str]]


def _path_reader(path: str, name: str) -> Reader:
    """Compile a rule path once into a function returning the values to match (as text)."""
    path = path.removeprefix("normalized.")
    if not path:
        raise EnrichmentError(f"The enrichment {name!r} has no path; name a field, e.g. srcIP.")
    head, _, rest = path.partition(".")
    if path in _MAP_COLUMNS or path == "enrichments":
        raise EnrichmentError(
            f"The enrichment {name!r} path {path!r} is not a single value; "
            "name a key in it, e.g. actor.email."
        )
    if path in _COLUMNS:  # a column left out of the row holds its default
        default = OMITTED_DEFAULTS.get(path)
        return lambda row, event: _texts(row.get(path, default))
    if head in _MAP_COLUMNS:
        return lambda row, event: _texts(row[head].get(rest))
    keys = path.split(".")
    if head in _JSON_COLUMNS and rest:
        keys = [_JSON_COLUMNS[head], *rest.split(".")]
    elif head == "raw" and rest:
        keys = rest.split(".")
    return lambda row, event: _texts(_walk(event, keys)) if event is not None else []


def _walk(value: Any, keys: list[str]) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _texts(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, int | float):
        return [str(value)]
    if isinstance(value, list):  # an array column or a list: each scalar element is tried
        return [text for item in value if not isinstance(item, list) for text in _texts(item)]
    return []


def _text(value: Any) -> str:
    texts = _texts(value)
    return texts[0] if texts and not isinstance(value, list) else ""


def load_rules(path: str | Path) -> list[RuleSet]:
    """Rule sets from a JSON file (see the module docstring for the shape)."""
    path = Path(path).expanduser()
    try:
        document = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise EnrichmentError(f"The enrichment rules file {path} does not exist.") from None
    except OSError as exc:
        raise EnrichmentError(
            f"The enrichment rules file {path} cannot be read ({exc.strerror})."
        ) from exc
    except orjson.JSONDecodeError as exc:
        raise EnrichmentError(
            f"The enrichment rules file {path} is not valid JSON ({exc})."
        ) from exc
    return parse_rules(document, origin=str(path))


def parse_rules(document: Any, origin: str = "the rules given") -> list[RuleSet]:
    """Rule sets from parsed JSON: a list of enrichments, or {"enrichments": [...]}."""
    if isinstance(document, dict):
        document = document.get("enrichments")
    if not isinstance(document, list):
        raise EnrichmentError(
            f"The enrichments in {origin} must be a JSON list (or an object with an "
            '"enrichments" list).'
        )
    rule_sets = []
    for number, item in enumerate(document, start=1):
        if not isinstance(item, dict):
            raise EnrichmentError(f"Enrichment {number} in {origin} is not a JSON object.")
        if item.get("isActive") is False:
            continue
        name = item.get("name")
        path = item.get("path")
        rules = item.get("rules")
        if not isinstance(name, str) or not name:
            raise EnrichmentError(f"Enrichment {number} in {origin} has no name.")
        if not isinstance(path, str) or not isinstance(rules, list):
            raise EnrichmentError(
                f"The enrichment {name!r} in {origin} needs a path (text) and rules (a list)."
            )
        rule_sets.append(
            RuleSet(
                name=name,
                path=path,
                rules=tuple(_parse_rule(rule, name, n) for n, rule in enumerate(rules, start=1)),
                provider=str(item.get("provider") or DEFAULT_PROVIDER),
            )
        )
    return rule_sets


def _parse_rule(rule: Any, name: str, number: int) -> Rule:
    if not isinstance(rule, dict) or not isinstance(rule.get("pattern"), str):
        raise EnrichmentError(f"The enrichment {name!r} rule {number} needs a pattern (text).")
    data = rule.get("data") or {}
    if not isinstance(data, dict):
        raise EnrichmentError(f"The enrichment {name!r} rule {number} data must be an object.")
    texts = {str(key): _text(value) for key, value in data.items()}
    return Rule(type=str(rule.get("type", "")).lower(), pattern=rule["pattern"], data=texts)
