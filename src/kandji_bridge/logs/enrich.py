"""Transform: enrich normalized rows with IP intelligence and custom rules.

IP addresses (`srcIP`, `dstIP`) are looked up in, first to last, every configured `.mmdb` file
(MaxMind City / Country / Enterprise / ISP / Connection-Type / ASN, or IPinfo; the layout is chosen
from the file's `database_type`), then in geoip2fast's bundled data (country and AS organization,
IPv4 and IPv6, no download). A field keeps the first non-empty value found. Private, loopback,
link-local, reserved and multicast addresses are never looked up. Results are cached per address.

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

import contextlib
import ipaddress
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Protocol

import maxminddb
import orjson

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.geoip2fast_compact import load_compact
from kandji_bridge.logs.normalize import OMITTED_DEFAULTS, Row
from kandji_bridge.logs.schema import COLUMN_NAMES

ENV_MMDB = "KANDJI_BRIDGE_MMDB"
ENV_RULES = "KANDJI_BRIDGE_ENRICHMENT_RULES"
GEOIP2FAST_DATA = "geoip2fast-asn-ipv6.dat.gz"
RULE_TYPES = ("exact", "regex", "cidr")
DEFAULT_PROVIDER = "custom"


class EnrichmentError(BridgeError):
    """An enrichment input (an .mmdb file, the rules file) is unusable."""


@dataclass(frozen=True, slots=True)
class IpDetails:
    """What the databases know about one address; field names follow the src*/dst* columns."""

    ASCountryCode: str = ""
    ASNumber: int = 0
    ASOrganization: str = ""
    City: str = ""
    ConnectionType: str = ""
    ISP: str = ""
    Latitude: float = 0.0
    Longitude: float = 0.0
    UserType: str = ""


_DETAIL_FIELDS = tuple(f.name for f in fields(IpDetails))


class IpDatabase(Protocol):
    name: str

    def lookup(self, ip: str) -> dict[str, Any]:
        """The IpDetails fields this database knows for ip (non-empty values only)."""
        ...


# --- IP databases -------------------------------------------------------------------------------


class Geoip2FastDatabase:
    """geoip2fast's bundled MaxMind GeoLite2 extract: country code and AS organization."""

    name = "geoip2fast"

    def lookup(self, ip: str) -> dict[str, Any]:
        result = _geoip2fast().lookup(ip)
        found: dict[str, Any] = {}
        if len(result.country_code) == 2:  # "--" not found, "" invalid
            found["ASCountryCode"] = result.country_code
        if result.asn_name:
            found["ASOrganization"] = result.asn_name
        return found


def _geoip2fast() -> Any:
    """Loaded once per process (about 0.6 s; 26 MB kept of ~107), on the first public address.

    Under a lock: geoip2fast keeps its data in module globals, which the compaction swaps, so a
    second thread must neither load them again nor look up while they are being swapped.
    """
    with _GEOIP2FAST_LOCK:
        return _load_geoip2fast()


_GEOIP2FAST_LOCK = threading.Lock()


@cache
def _load_geoip2fast() -> Any:
    from geoip2fast import GeoIP2Fast

    return load_compact(lambda: GeoIP2Fast(verbose=False, geoip2fast_data_file=GEOIP2FAST_DATA))


class MmdbDatabase:
    """One MaxMind or IPinfo .mmdb file, read with maxminddb (memory-mapped)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise EnrichmentError(
                f"The IP database {self.path} does not exist; fix the path in {ENV_MMDB} "
                "or remove it from the list."
            )
        try:
            self._reader = maxminddb.open_database(str(self.path))
            database_type = str(self._reader.metadata().database_type)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise EnrichmentError(
                f"The file {self.path} is not a readable .mmdb database ({exc}); "
                "download it again or remove it from the list."
            ) from exc
        self.name = database_type
        self._extract = layout_for(database_type, self.path)

    def lookup(self, ip: str) -> dict[str, Any]:
        try:
            record = self._reader.get(ip)
        except ValueError:
            return {}
        return self._extract(record) if isinstance(record, dict) else {}

    def close(self) -> None:
        self._reader.close()


def layout_for(database_type: str, path: Path) -> Callable[[dict], dict[str, Any]]:
    kind = database_type.lower()
    if "ipinfo" in kind:
        return from_ipinfo
    if any(word in kind for word in ("city", "country", "enterprise")):
        return from_maxmind_location
    if any(word in kind for word in ("isp", "asn", "connection-type", "connection_type")):
        return from_maxmind_network
    raise EnrichmentError(
        f"The IP database {path} is a {database_type!r} database; kandji-bridge reads MaxMind "
        "City, Country, Enterprise, ISP, Connection-Type and ASN databases and IPinfo databases."
    )


def from_maxmind_location(record: dict) -> dict[str, Any]:
    found: dict[str, Any] = {}
    country = record.get("country") or record.get("registered_country")
    if isinstance(country, dict) and country.get("iso_code"):
        found["ASCountryCode"] = country["iso_code"]
    city = record.get("city")
    if isinstance(city, dict):
        name = (city.get("names") or {}).get("en")
        if name:
            found["City"] = name
    location = record.get("location")
    if isinstance(location, dict) and "latitude" in location and "longitude" in location:
        found["Latitude"] = float(location["latitude"])
        found["Longitude"] = float(location["longitude"])
    traits = record.get("traits")
    if isinstance(traits, dict):  # Enterprise carries the network fields here
        found.update(from_maxmind_network(traits))
        if traits.get("user_type"):
            found["UserType"] = traits["user_type"]
    return found


def from_maxmind_network(record: dict) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if record.get("autonomous_system_number"):
        found["ASNumber"] = int(record["autonomous_system_number"])
    if record.get("autonomous_system_organization"):
        found["ASOrganization"] = record["autonomous_system_organization"]
    if record.get("isp"):
        found["ISP"] = record["isp"]
    if record.get("connection_type"):
        found["ConnectionType"] = record["connection_type"]
    return found


def from_ipinfo(record: dict) -> dict[str, Any]:
    """IPinfo's flat layouts (lite, country_asn, asn, location): strings, "AS15169"-style ASNs."""
    found: dict[str, Any] = {}
    code = record.get("country_code") or record.get("country")
    if isinstance(code, str) and len(code) == 2:
        found["ASCountryCode"] = code
    if record.get("city"):
        found["City"] = record["city"]
    latitude = record.get("latitude", record.get("lat"))
    longitude = record.get("longitude", record.get("lng"))
    if latitude not in (None, "") and longitude not in (None, ""):
        with contextlib.suppress(ValueError):
            found["Latitude"], found["Longitude"] = float(latitude), float(longitude)
    asn = str(record.get("asn") or "").upper().removeprefix("AS")
    if asn.isdigit():
        found["ASNumber"] = int(asn)
    organization = record.get("as_name") or record.get("name")
    if not organization and isinstance(record.get("org"), str):  # "AS15169 Google LLC"
        organization = record["org"].partition(" ")[2] if record["org"].startswith("AS") else ""
    if organization:
        found["ASOrganization"] = organization
    if record.get("type"):  # isp / hosting / business / education / government
        found["UserType"] = record["type"]
    return found


def mmdb_paths_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """Paths in KANDJI_BRIDGE_MMDB, separated by commas or the OS path separator."""
    value = (os.environ if env is None else env).get(ENV_MMDB, "")
    parts = value.replace(os.pathsep, ",").split(",")
    return [part.strip() for part in parts if part.strip()]


def is_lookup_address(ip: str) -> bool:
    """Only globally routable unicast addresses are worth a lookup."""
    address = _ip_object(ip)
    return (
        address is not None
        and address.is_global
        and not (address.is_multicast or address.is_reserved or address.is_link_local)
    )


@lru_cache(maxsize=65536)
def _ip_object(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# --- Custom rules -------------------------------------------------------------------------------


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
            address = _ip_object(value)
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


# --- The transform ------------------------------------------------------------------------------


class Enricher:
    """Fills the src*/dst* columns and `enrichments` of normalized rows, in place."""

    def __init__(
        self,
        databases: Sequence[IpDatabase] = (),
        rule_sets: Sequence[RuleSet] = (),
        cache_size: int = 65536,
    ) -> None:
        self.databases = tuple(databases)
        self.rule_sets = tuple(rule_sets)
        self.details = lru_cache(maxsize=cache_size)(self._lookup)
        self._columns = lru_cache(maxsize=cache_size)(self._detail_columns)

    def enrich(self, row: Row, event: Mapping[str, Any] | None = None) -> Row:
        """Enrich one row; `event` (the Kandji event's data) serves rule paths into the event."""
        if row["srcIP"]:
            row.update(self._columns(row["srcIP"])[0])
        if row["dstIP"]:
            row.update(self._columns(row["dstIP"])[1])
        for rule_set in self.rule_sets:
            rule_set.apply(row, event)
        return row

    def _lookup(self, ip: str) -> IpDetails | None:
        if not self.databases or not is_lookup_address(ip):
            return None
        found: dict[str, Any] = {}
        for database in self.databases:
            for key, value in database.lookup(ip).items():
                found.setdefault(key, value)
        return IpDetails(**found) if found else None

    def _detail_columns(self, ip: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """The src* and dst* columns ip fills; a field no database knows stays out of the row."""
        found = self.details(ip)
        values = {name: getattr(found, name) for name in _DETAIL_FIELDS} if found else {}
        known = {name: value for name, value in values.items() if value}
        return (
            {f"src{name}": value for name, value in known.items()},
            {f"dst{name}": value for name, value in known.items()},
        )

    def close(self) -> None:
        for database in self.databases:
            close = getattr(database, "close", None)
            if close is not None:
                close()


def build_enricher(
    mmdb_paths: Iterable[str | Path] | None = None,
    rules_path: str | Path | None = None,
    *,
    use_geoip2fast: bool = True,
    env: Mapping[str, str] | None = None,
) -> Enricher:
    """The enricher the configuration asks for: explicit arguments first, else the environment."""
    environ = os.environ if env is None else env
    paths = list(mmdb_paths) if mmdb_paths is not None else mmdb_paths_from_env(environ)
    databases: list[IpDatabase] = [MmdbDatabase(path) for path in paths]
    if use_geoip2fast:
        databases.append(Geoip2FastDatabase())
    rules_path = rules_path or environ.get(ENV_RULES) or None
    rule_sets = load_rules(rules_path) if rules_path else []
    return Enricher(databases, rule_sets)
