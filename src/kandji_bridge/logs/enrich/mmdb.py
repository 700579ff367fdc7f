"""MaxMind and IPinfo `.mmdb` files (City, Country, Enterprise, ISP, Connection-Type, ASN) listed in
KANDJI_BRIDGE_MMDB, read with maxminddb; the layout is chosen from the file's `database_type`."""

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import maxminddb

from kandji_bridge.logs.enrich.ip import EnrichmentError

ENV_MMDB = "KANDJI_BRIDGE_MMDB"


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
