"""IP addresses and what the databases know about them: the record a lookup fills, the interface
every IP database implements, and which addresses are worth a lookup at all."""

import ipaddress
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Protocol

from kandji_bridge.errors import BridgeError


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


DETAIL_FIELDS = tuple(f.name for f in fields(IpDetails))


class IpDatabase(Protocol):
    name: str

    def lookup(self, ip: str) -> dict[str, Any]:
        """The IpDetails fields this database knows for ip (non-empty values only)."""
        ...


def is_lookup_address(ip: str) -> bool:
    """Only globally routable unicast addresses are worth a lookup."""
    address = ip_object(ip)
    return (
        address is not None
        and address.is_global
        and not (address.is_multicast or address.is_reserved or address.is_link_local)
    )


@lru_cache(maxsize=65536)
def ip_object(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
