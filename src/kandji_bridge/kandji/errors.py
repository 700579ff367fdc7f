"""What can go wrong talking to Kandji, each as its own type with one sentence saying what to do.

Messages name the API host (`acme.api.kandji.io`), never the token.
"""

from kandji_bridge.errors import BridgeError
from kandji_bridge.kandji.limits import ENV_RUN_SECONDS
from kandji_bridge.kandji.permissions import Permission

API_URL_HINT = (
    "the API URL from Kandji Settings → Access, like https://YOUR_SUBDOMAIN.api.kandji.io"
)


class KandjiError(BridgeError):
    """A failure talking to Kandji."""


class InvalidURLError(KandjiError):
    """The URL given for Kandji is not a usable Kandji API URL."""


class InvalidTokenError(KandjiError):
    """The token cannot be a Kandji API token (empty, or has spaces or odd characters)."""


class NetworkError(KandjiError):
    """Kandji could not be reached: DNS, TLS, connection or timeout."""


class DNSError(NetworkError):
    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"The host {host} could not be found ({reason}); check the subdomain in the API URL "
            f"(use {API_URL_HINT}) and that this machine's DNS works."
        )


class TLSError(NetworkError):
    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"The secure (TLS) connection to {host} failed ({reason}); check the API URL, and if "
            "a proxy inspects HTTPS here, point SSL_CERT_FILE at its CA certificate."
        )


class ConnectError(NetworkError):
    def __init__(self, host: str, reason: str, tries: int) -> None:
        super().__init__(
            f"Cannot reach {host} ({reason}, {_tries(tries)}); check the network, firewall and "
            "proxy settings (HTTPS_PROXY), then try again."
        )


class KandjiTimeout(NetworkError):
    def __init__(self, host: str, timeout: float, tries: int) -> None:
        super().__init__(
            f"{host} did not answer within {timeout:g} s ({_tries(tries)}); check the network "
            "and proxy settings, or try again later."
        )


class SlowResponseError(NetworkError):
    """A response still arriving after the per-response deadline (a server that trickles)."""

    def __init__(self, host: str, seconds: float, tries: int) -> None:
        super().__init__(
            f"Kandji at {host} was still sending one response after {seconds:g} s "
            f"({_tries(tries)}), far slower than Kandji answers; check the network and any proxy "
            "in between, or try again later."
        )


class RunTooLongError(KandjiError):
    """A run (a collection pass, a device import) past its wall-clock limit."""

    def __init__(self, host: str, seconds: float, requests: int) -> None:
        super().__init__(
            f"Reading from Kandji at {host} took longer than the {seconds:g} s one run may take "
            f"({requests:,} requests; the limit is {ENV_RUN_SECONDS}); what was read is kept, so "
            "run it again to go on, or raise the limit for a very large tenant."
        )


class PagingError(KandjiError):
    """Paging that would never end: a cursor cycle, a chain past the history asked, a device
    list that ignores offset. Reading stops at once, so the tenant's API budget is spared."""

    def __init__(self, host: str, listing: str, problem: str, pages: int, what_to_do: str) -> None:
        super().__init__(
            f"Kandji's {listing} at {host} {problem} after {pages:,} "
            f"{'page' if pages == 1 else 'pages'}, so kandji-bridge stopped reading; {what_to_do}"
        )


class AuthenticationError(KandjiError):
    def __init__(self, host: str) -> None:
        super().__init__(
            f"Kandji at {host} refused the API token (401): it is wrong, revoked or expired; "
            "create a new token in Kandji Settings → Access and use that."
        )


class PermissionDeniedError(KandjiError):
    def __init__(self, host: str, permission: Permission) -> None:
        self.permission = permission
        grant = permission.how_to_grant()
        super().__init__(
            f'The API token for {host} lacks the "{permission.label}" permission (403); '
            f"{grant[0].lower()}{grant[1:]}"
        )


class EndpointNotFoundError(KandjiError):
    """404 on a list endpoint: the URL does not point at a Kandji tenant's API."""

    def __init__(self, host: str, path: str) -> None:
        super().__init__(
            f"{host} answered 404 Not Found for {path}, so the API URL or its subdomain is "
            f"wrong; use {API_URL_HINT}."
        )


class DeviceNotFoundError(KandjiError):
    """404 on one device's details: the URL is right, the device is gone."""

    def __init__(self, host: str, device_id: str) -> None:
        self.device_id = device_id
        super().__init__(
            f"Kandji at {host} has no device {device_id} (404); it may have been deleted, so "
            "list the devices again."
        )


class InvalidCursorError(KandjiError):
    """404 "Invalid cursor": the saved audit-events cursor is not one Kandji can read."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"Kandji at {host} does not accept the saved audit-events cursor (404 Invalid "
            "cursor); page again from a start date instead of that cursor."
        )


class RedirectError(KandjiError):
    """Redirects are never followed, so an allowed host cannot bounce the token elsewhere."""

    def __init__(self, host: str, status: int, location_host: str | None) -> None:
        target = f" to {location_host}" if location_host else ""
        super().__init__(
            f"{host} answered with a redirect ({status}){target}, which kandji-bridge never "
            f"follows; use {API_URL_HINT}."
        )


class RateLimitError(KandjiError):
    def __init__(
        self, host: str, *, tries: int, retry_after: float | None = None, limit: float | None = None
    ) -> None:
        if retry_after is not None and limit is not None and retry_after > limit:
            what = f"asked to wait {retry_after:.0f} s, longer than the {limit:.0f} s allowed"
        else:
            what = f"still answered 429 Too Many Requests after {_tries(tries)}"
        super().__init__(
            f"Kandji at {host} {what}; the tenant's API rate limit is used up (maybe by another "
            "integration using the same tenant), so try again later."
        )


class ServerError(KandjiError):
    def __init__(self, host: str, status: int, tries: int) -> None:
        self.status = status
        super().__init__(
            f"Kandji at {host} answered {status} (a server error) {_tries(tries, 'after')}; the "
            "problem is on Kandji's side, so try again later."
        )


class UnexpectedResponseError(KandjiError):
    """A status Kandji does not document for these GET endpoints (400, 405, 415, ...)."""

    def __init__(self, host: str, status: int, path: str, detail: str) -> None:
        self.status = status
        said = f": {detail.rstrip('.')}" if detail else ""
        super().__init__(
            f"Kandji at {host} answered {status} for {path}{said}; check the API URL and any "
            "filters given, and report it if it persists."
        )


class MalformedResponseError(KandjiError):
    """A response that is not JSON, is cut short, or has the wrong shape."""

    def __init__(self, host: str, path: str, problem: str) -> None:
        super().__init__(
            f"Kandji at {host} sent a response to {path} that kandji-bridge cannot read "
            f"({problem}); check that the URL is {API_URL_HINT}, or try again later."
        )


def _tries(tries: int, prefix: str = "") -> str:
    text = "1 try" if tries == 1 else f"{tries} tries"
    return f"{prefix} {text}".strip()
