"""Transform: enrich normalized rows with IP intelligence and custom rules.

IP addresses (`srcIP`, `dstIP`) are looked up in, first to last, every configured `.mmdb` file
(MaxMind City / Country / Enterprise / ISP / Connection-Type / ASN, or IPinfo; the layout is chosen
from the file's `database_type`), then in geoip2fast's bundled data (country and AS organization,
IPv4 and IPv6, no download). A field keeps the first non-empty value found. Private, loopback,
link-local, reserved and multicast addresses are never looked up. Results are cached per address.

In the pipeline, logs/ reads as a source (`collector`), then transforms (`transform`, which runs
`normalize` and this package), then a sink (`store`). Here: `ip` (what a lookup fills, which
addresses are looked up), `mmdb` and `geoip` (the IP databases), `rules` (custom rules), and the
Enricher that applies them to a row.
"""

import os
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from kandji_bridge.logs.enrich.geoip import GEOIP2FAST_DATA, Geoip2FastDatabase
from kandji_bridge.logs.enrich.ip import (
    DETAIL_FIELDS,
    EnrichmentError,
    IpDatabase,
    IpDetails,
    is_lookup_address,
)
from kandji_bridge.logs.enrich.mmdb import (
    ENV_MMDB,
    MmdbDatabase,
    from_ipinfo,
    layout_for,
    mmdb_paths_from_env,
)
from kandji_bridge.logs.enrich.rules import ENV_RULES, RuleSet, load_rules, parse_rules
from kandji_bridge.logs.normalize import Row

__all__ = [
    "ENV_MMDB",
    "ENV_RULES",
    "GEOIP2FAST_DATA",
    "Enricher",
    "EnrichmentError",
    "Geoip2FastDatabase",
    "IpDatabase",
    "IpDetails",
    "MmdbDatabase",
    "RuleSet",
    "build_enricher",
    "from_ipinfo",
    "is_lookup_address",
    "layout_for",
    "load_rules",
    "mmdb_paths_from_env",
    "parse_rules",
]


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
        values = {name: getattr(found, name) for name in DETAIL_FIELDS} if found else {}
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
