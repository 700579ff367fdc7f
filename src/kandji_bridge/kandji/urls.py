"""Turn whatever a user pastes as their Kandji URL into the API base URL, or say what to paste.

Only Kandji's own hosts (`*.kandji.io`, over HTTPS) are accepted, plus the `host[:port]` entries of
KANDJI_BRIDGE_ALLOWED_HOSTS (a simulator, a proxy): the token is sent to this URL, so a typo or a
planted URL must not send it to another host, over plain HTTP, or to an internal address.
"""

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from kandji_bridge.kandji.errors import InvalidURLError

PASTE = (
    "paste your API URL from Kandji Settings → Access, like https://YOUR_SUBDOMAIN.api.kandji.io"
)
ALLOW = "add its host:port to KANDJI_BRIDGE_ALLOWED_HOSTS"

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_API_PATH = "/api/v1"
# Kandji's own sites under kandji.io, which are not a tenant's web app.
_NOT_TENANTS = frozenset({"www", "api", "eu", "clients", "support", "docs", "status", "updates"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ApiUrl:
    base_url: str  # scheme://host[:port], no trailing slash
    note: str | None = None  # what was derived from the URL the user gave, to tell them

    @property
    def host(self) -> str:
        """host[:port], as errors name it."""
        return self.base_url.split("://", 1)[1]


def normalize_api_url(url: str, allowed_hosts: frozenset[str]) -> ApiUrl:
    """The API base URL for `url`, or InvalidURLError saying what to paste instead."""
    text = url.strip()
    if not text:
        raise InvalidURLError(f"No Kandji API URL was given; {PASTE}.")
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise InvalidURLError(f"The Kandji API URL contains spaces or control characters; {PASTE}.")
    if not _SCHEME.match(text):
        text = "https://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise InvalidURLError(f"That is not a valid URL; {PASTE}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise InvalidURLError(f"The URL scheme {scheme}:// is not supported; {PASTE}.")
    if "@" in parts.netloc:
        raise InvalidURLError(
            "The Kandji API URL must not contain a user name or password (the token is given "
            f"separately); {PASTE}."
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidURLError(f"The URL has no host name; {PASTE}.")
    address = _ip_address(host)
    netloc = (f"[{host}]" if address and address.version == 6 else host) + (
        f":{port}" if port is not None else ""
    )
    if not address and not all(_LABEL.match(label) for label in host.split(".")):
        raise InvalidURLError(f"That is not a valid host name; {PASTE}.")

    allowed = _is_allowed(host, netloc, allowed_hosts)
    api_host, derived = (netloc, False) if allowed else _kandji_api_host(host, address, netloc)
    suggestion = f"https://{api_host}"

    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise InvalidURLError(
            f"The Kandji API URL must not have a query (?…) or fragment (#…); use {suggestion}."
        )
    path = parts.path.rstrip("/")
    if path not in ("", _API_PATH):
        raise InvalidURLError(
            f"The Kandji API URL must not have a path other than {_API_PATH}; use {suggestion}."
        )
    if scheme == "http" and not allowed:
        raise InvalidURLError(
            f"Plain http:// would send the token unencrypted; use {suggestion} (http:// works "
            f"only for hosts in KANDJI_BRIDGE_ALLOWED_HOSTS)."
        )
    base_url = f"{scheme}://{api_host}"
    if derived:
        return ApiUrl(
            base_url, f"Using the API URL {base_url} for the web-app URL https://{netloc}."
        )
    return ApiUrl(base_url)


def _ip_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_allowed(host: str, netloc: str, allowed_hosts: frozenset[str]) -> bool:
    # An entry is host[:port]; a bare host allows every port. IPv6 entries may omit the brackets.
    return bool({netloc, host, f"[{host}]"} & {entry.lower() for entry in allowed_hosts})


def _kandji_api_host(host: str, address: IPAddress | None, netloc: str) -> tuple[str, bool]:
    """(the API host for a Kandji host, whether it was derived from a web-app host)."""
    if address is not None:
        kind = "the internal address" if _is_internal(address) else "the IP address"
        raise InvalidURLError(
            f"The Kandji API URL points at {kind} {address}, not a Kandji host; {PASTE} "
            f"(for a local server, {ALLOW})."
        )
    if "." not in host:
        # A single word is no domain name; it may even be a token pasted into the wrong field,
        # so it is not repeated back.
        raise InvalidURLError(f"The Kandji API URL has no domain name; {PASTE}.")
    if host == "kandji.io":
        raise InvalidURLError(f"{host} is Kandji's own site, not your tenant; {PASTE}.")
    if not host.endswith(".kandji.io"):
        raise InvalidURLError(f"{host} is not a Kandji host; {PASTE} (for another host, {ALLOW}).")
    port = netloc[len(host) :]
    labels = host.removesuffix(".kandji.io").split(".")
    tenant, region = labels[0], labels[1:]
    if len(labels) == 1 and tenant not in _NOT_TENANTS:
        return f"{tenant}.api.kandji.io{port}", True  # US web app
    if region == ["eu"] and tenant not in _NOT_TENANTS:
        return f"{tenant}.api.eu.kandji.io{port}", True  # EU web app
    if len(labels) == 1 or tenant in _NOT_TENANTS:
        raise InvalidURLError(f"{host} is Kandji's own site, not your tenant; {PASTE}.")
    return netloc, False  # SUB.api.kandji.io, SUB.api.eu.kandji.io, SUB.clients.us-1.kandji.io…


def _is_internal(address: IPAddress) -> bool:
    # Loopback, private, link-local (cloud metadata), unspecified, reserved, multicast.
    return not address.is_global or address.is_multicast
