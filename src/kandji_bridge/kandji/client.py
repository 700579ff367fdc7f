"""The read-only Kandji API client: GET only, paging, the shared rate limit, retries, clear errors.

There is no request method taking an HTTP method: each endpoint kandji-bridge reads has its own
method, and all of them GET, so nothing here can change a Kandji tenant.
"""

import asyncio
import hashlib
import logging
import random
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import orjson

from kandji_bridge import __version__, redact
from kandji_bridge.kandji.errors import (
    AuthenticationError,
    ConnectError,
    DeviceNotFoundError,
    DNSError,
    EndpointNotFoundError,
    InvalidCursorError,
    InvalidTokenError,
    KandjiError,
    KandjiTimeout,
    MalformedResponseError,
    PagingError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    RunTooLongError,
    ServerError,
    SlowResponseError,
    TLSError,
    UnexpectedResponseError,
)
from kandji_bridge.kandji.limits import ENV_MAX_AUDIT_PAGES, ENV_MAX_DEVICE_PAGES, KandjiLimits
from kandji_bridge.kandji.payloads import (
    AuditEvent,
    AuditPage,
    BadJSON,
    BadShape,
    parse_admin_page,
    parse_audit_page,
    parse_device_details,
    parse_device_list,
)
from kandji_bridge.kandji.permissions import (
    ADMINS,
    AUDIT_EVENTS,
    DEVICE_DETAILS,
    DEVICE_LIST,
    Permission,
)
from kandji_bridge.kandji.ratelimit import RateLimiter, limiter_for
from kandji_bridge.kandji.urls import ApiUrl, normalize_api_url

__all__ = ["AuditEvent", "AuditPage", "ClientStats", "EndpointStats", "KandjiClient"]

log = logging.getLogger(__name__)

USER_AGENT = f"kandji-bridge/{__version__}"
AUDIT_SORTS = ("occurred_at", "-occurred_at", "id", "-id")
MAX_AUDIT_LIMIT = 500
MAX_DEVICE_LIMIT = 300
# A DNS or TLS failure is a wrong URL or a broken network far more often than a blip: one retry.
NAME_OR_TLS_TRIES = 2
# A response that trickled past its deadline will most likely trickle again: one retry.
SLOW_RESPONSE_TRIES = 2
# Pages wholly dated this far past this machine's clock mean the chain has run past now.
FUTURE_SKEW = timedelta(hours=1)
# A page wholly dated this far before the start_date asked was sent as if start_date were not.
START_SLACK = timedelta(seconds=1)
# Such pages are stored (an event already stored is dropped by its id), but this many in a row
# is a server that ignores start_date or a chain running back through history: stop there, before
# it spends the tenant's hourly budget re-reading the year.
OLD_PAGES_ALLOWED = 20
AUDIT_EVENTS_LISTING = "audit events"
DEVICE_LISTING = "device list"
ADMINS_LISTING = "admin list"
ADMINS_CYCLE = "repeated a page already read (a cursor cycle)"
MAX_ADMIN_LIMIT = 300
# A tenant has a handful of admins, a large one hundreds: more pages than this is a chain that
# does not end.
MAX_ADMIN_PAGES = 100
CURSOR_CYCLE = "repeat a page already read (a cursor cycle)"
REPORT_IT = (
    "try again later, and report it to Kandji support (or to whoever runs a proxy in between) "
    "if it happens again."
)

T = TypeVar("T")


@dataclass
class EndpointStats:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    time_waiting: float = 0.0  # seconds spent waiting for the rate limiter and backing off


@dataclass
class ClientStats(EndpointStats):
    """Totals, and the same counts per endpoint ("GET /api/v1/devices", ...)."""

    by_endpoint: dict[str, EndpointStats] = field(default_factory=dict)


@dataclass(frozen=True)
class _Retry:
    """A response another try may fix: back off first (at least `at_least` seconds), unless the
    rate limiter already holds every caller of the tenant (a 429)."""

    back_off: bool = True
    at_least: float | None = None


def _count(stats: ClientStats, endpoint: str, **counts: float) -> None:
    per_endpoint = stats.by_endpoint.setdefault(endpoint, EndpointStats())
    for name, value in counts.items():
        for target in (stats, per_endpoint):
            setattr(target, name, getattr(target, name) + value)


class KandjiClient:
    """An async, read-only client for one Kandji tenant; use it as `async with KandjiClient(...)`.

    A string URL is checked with `normalize_api_url` against `allowed_hosts` (the Settings'
    allowed hosts: callers pass them, the client never reads the environment); an ApiUrl is used
    as it is. Every request waits its turn on the tenant's shared rate limiter.

    `limits` bound one run: each response must arrive whole within `response_seconds`, and no
    request starts after `run_seconds` from the client's creation (make one client per run).
    Every text the server sends that ends up in an error is scrubbed of the token first.
    """

    def __init__(
        self,
        api_url: ApiUrl | str,
        token: str,
        *,
        allowed_hosts: frozenset[str] = frozenset(),
        limiter: RateLimiter | None = None,
        max_tries: int = 6,
        timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        limits: KandjiLimits | None = None,
    ) -> None:
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        token = _checked_token(token)
        # Registered for the log filter too: httpcore's debug lines carry response headers.
        redact.remember(token)
        self._scrub = redact.Scrubber(token)
        self.limits = limits or KandjiLimits()
        self._deadline = time.monotonic() + self.limits.run_seconds
        if isinstance(api_url, str):
            api_url = normalize_api_url(api_url, allowed_hosts)
        self.api_url = api_url
        self.host = api_url.host
        self.limiter = limiter or limiter_for(api_url.base_url)
        self.stats = ClientStats()
        self._max_tries = max_tries
        self._timeout = timeout
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._max_retry_after = max_retry_after
        self._sleep = sleep
        # The token lives only in this header; httpx masks it in the headers' repr.
        self._http = httpx.AsyncClient(
            base_url=api_url.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            },
            timeout=timeout,
            follow_redirects=False,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"KandjiClient({self.api_url.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def iter_audit_pages(
        self,
        *,
        sort_by: str = "occurred_at",
        start_date: datetime | date | str | None = None,
        end_date: datetime | date | str | None = None,
        limit: int = MAX_AUDIT_LIMIT,
        cursor: str | None = None,
    ) -> AsyncIterator[AuditPage]:
        """Audit-event pages from `cursor` (or the start), following `next` until it runs out.

        Only the cursor is taken from `next`; each page is asked of this client's own base URL.
        An empty page ends the pages even if it has a `next`: there is nothing more to read now.
        Naive datetimes are taken as UTC.

        Paging that would never end raises PagingError as soon as it shows, once the page that
        shows it is handed over: a cursor or a page read before (a cycle), OLD_PAGES_ALLOWED pages
        in a row wholly before `start_date`, a page wholly after now, or more pages than
        `limits.max_audit_pages`.
        """
        if sort_by not in AUDIT_SORTS:
            raise ValueError(f"sort_by must be one of {', '.join(AUDIT_SORTS)}")
        if not 1 <= limit <= MAX_AUDIT_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_AUDIT_LIMIT}")
        params = {"limit": str(limit), "sort_by": sort_by}
        for name, value in (("start_date", start_date), ("end_date", end_date)):
            if value is not None:
                params[name] = _date_param(value)
        earliest = _as_utc(start_date)
        # Digests, not the texts: a hostile server's cursors may be megabytes each.
        cursors_read = {_digest([cursor])} if cursor is not None else set()
        pages_read: set[bytes] = set()
        pages = old_pages = 0
        while True:
            query = params if cursor is None else {**params, "cursor": cursor}
            events, next_cursor = await self._get(
                AUDIT_EVENTS, AUDIT_EVENTS.path, query, parse_audit_page
            )
            pages += 1
            # Checked once the page is handed over: whatever a misbehaving server sent is kept.
            yield AuditPage(events, cursor, next_cursor)
            if next_cursor is None or not events:
                return
            old_pages = old_pages + 1 if _wholly_before(events, earliest) else 0
            self._check_audit_page(events, earliest, old_pages, pages, pages_read)
            if _digest([next_cursor]) in cursors_read:
                raise self._paging_error(AUDIT_EVENTS_LISTING, CURSOR_CYCLE, pages, REPORT_IT)
            if pages >= self.limits.max_audit_pages:
                raise self._paging_error(
                    AUDIT_EVENTS_LISTING,
                    "were still paging (a cursor chain that does not end)",
                    pages,
                    f"if this tenant really has more than "
                    f"{pages * limit:,} events to read, raise {ENV_MAX_AUDIT_PAGES} and run "
                    "again, else report it to Kandji support.",
                )
            cursors_read.add(_digest([next_cursor]))
            cursor = next_cursor

    def _check_audit_page(
        self,
        events: list[AuditEvent],
        earliest: datetime | None,
        old_pages: int,
        pages: int,
        pages_read: set[bytes],
    ) -> None:
        """Raise PagingError if this page shows that the paging would never end."""
        page = _digest(event.id or event.raw for event in events)
        if page in pages_read:
            # The same events under a new cursor: a cycle the cursors alone do not show.
            raise self._paging_error(AUDIT_EVENTS_LISTING, CURSOR_CYCLE, pages, REPORT_IT)
        pages_read.add(page)
        if earliest is not None and old_pages > OLD_PAGES_ALLOWED:
            raise self._paging_error(
                AUDIT_EVENTS_LISTING,
                f"sent {old_pages} pages in a row of events older than the start date asked "
                f"({earliest:%Y-%m-%d %H:%M:%S} UTC), so the paging runs past the history asked",
                pages,
                REPORT_IT,
            )
        times = [when for event in events if (when := _occurred_at(event)) is not None]
        if not times:
            return
        now = datetime.now(UTC)
        if min(times) > now + FUTURE_SKEW:
            raise self._paging_error(
                AUDIT_EVENTS_LISTING,
                f"sent a page of events dated after now (from {min(times):%Y-%m-%d %H:%M:%S} "
                "UTC), so the paging runs past the present",
                pages,
                "check that this machine's clock is right, then report it to Kandji support if "
                "it happens again.",
            )

    async def iter_device_pages(
        self, *, limit: int = MAX_DEVICE_LIMIT, **filters: str | int | bool | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Device pages by offset until a short page; `filters` are the list's query parameters.

        A page made mostly of devices already listed (the server ignores offset), or more pages
        than `limits.max_device_pages`, raises PagingError.
        """
        if not 1 <= limit <= MAX_DEVICE_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_DEVICE_LIMIT}")
        if "offset" in filters:
            raise ValueError("offset is managed by the pager")
        params = {key: _query_value(value) for key, value in filters.items() if value is not None}
        params["limit"] = str(limit)
        offset = 0
        pages = 0
        listed: set[str] = set()
        while True:
            params["offset"] = str(offset)
            devices, single = await self._get(
                DEVICE_LIST, DEVICE_LIST.path, params, parse_device_list
            )
            pages += 1
            ids = {str(device["device_id"]) for device in devices}
            # A device enrolled or removed while listing shifts the offsets by one or two: a few
            # repeats are normal, a page mostly of devices listed before is not.
            if offset and 2 * len(ids & listed) > len(ids):
                raise self._paging_error(
                    DEVICE_LISTING,
                    "ignores offset: a page repeated devices already listed",
                    pages,
                    REPORT_IT,
                )
            listed |= ids
            yield devices
            # A single object (a filter matching one device) is the whole answer.
            if single or len(devices) < limit:
                return
            if pages >= self.limits.max_device_pages:
                raise self._paging_error(
                    DEVICE_LISTING,
                    "was still paging (a list that does not end)",
                    pages,
                    f"if this tenant really has more than "
                    f"{pages * limit:,} devices, raise {ENV_MAX_DEVICE_PAGES} and run again, "
                    "else report it to Kandji support.",
                )
            offset += len(devices)

    async def iter_admins(self, *, limit: int = MAX_ADMIN_LIMIT) -> AsyncIterator[dict[str, Any]]:
        """The tenant's admins (`id`, `email`, `first_name`, `last_name`, `role`, `is_active`),
        following `next` as the audit pages do: only its cursor is used, on this client's own
        base URL. A cursor or a page read before, or more than MAX_ADMIN_PAGES pages, raises
        PagingError. A token without the permission raises PermissionDeniedError (403)."""
        if not 1 <= limit <= MAX_ADMIN_LIMIT:
            raise ValueError(f"limit must be 1..{MAX_ADMIN_LIMIT}")
        params = {"limit": str(limit)}
        cursor: str | None = None
        cursors_read: set[bytes] = set()
        pages_read: set[bytes] = set()
        pages = 0
        while True:
            query = params if cursor is None else {**params, "cursor": cursor}
            admins, next_cursor = await self._get(ADMINS, ADMINS.path, query, parse_admin_page)
            pages += 1
            page = _digest(str(admin["id"]) for admin in admins)
            if admins and page in pages_read:
                raise self._paging_error(ADMINS_LISTING, ADMINS_CYCLE, pages, REPORT_IT)
            pages_read.add(page)
            for admin in admins:
                yield admin
            if next_cursor is None or not admins:
                return
            if _digest([next_cursor]) in cursors_read:
                raise self._paging_error(ADMINS_LISTING, ADMINS_CYCLE, pages, REPORT_IT)
            if pages >= MAX_ADMIN_PAGES:
                raise self._paging_error(
                    ADMINS_LISTING, "was still paging (a list that does not end)", pages, REPORT_IT
                )
            cursors_read.add(_digest([next_cursor]))
            cursor = next_cursor

    async def get_device_details(self, device_id: str) -> dict[str, Any]:
        if not device_id:
            raise ValueError("device_id is empty")
        path = DEVICE_DETAILS.path.replace("{device_id}", quote(device_id, safe=""))
        return await self._get(DEVICE_DETAILS, path, {}, parse_device_details, device_id=device_id)

    async def _get(
        self,
        permission: Permission,
        path: str,
        params: dict[str, str],
        parse: Callable[[bytes], T],
        device_id: str | None = None,
    ) -> T:
        """GET `path` and parse the body; any error raised says nothing of the token, even if
        the server (or a proxy) echoed it into what the error quotes."""
        try:
            return await self._request(permission, path, params, parse, device_id)
        except KandjiError as exc:
            exc.message = self._scrub(exc.message)
            exc.args = (exc.message,)
            raise

    async def _request(
        self,
        permission: Permission,
        path: str,
        params: dict[str, str],
        parse: Callable[[bytes], T],
        device_id: str | None,
    ) -> T:
        """GET `path` and parse the body, retrying what another try may fix."""
        endpoint = permission.endpoint
        for attempt in range(1, self._max_tries + 1):
            response = await self._send(endpoint, path, params, attempt)
            if response is None:
                continue
            outcome = self._classify(response, permission, path, params, parse, device_id, attempt)
            if not isinstance(outcome, _Retry):
                return outcome
            if outcome.back_off:
                await self._back_off(endpoint, attempt, at_least=outcome.at_least)
        raise AssertionError("unreachable: the last try returns or raises")

    async def _send(
        self, endpoint: str, path: str, params: dict[str, str], attempt: int
    ) -> httpx.Response | None:
        """One GET, on the tenant's rate limit and within the run's deadline: the response, or
        None after backing off from a failure another try may fix (else its error is raised)."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise RunTooLongError(self.host, self.limits.run_seconds, self.stats.requests)
        permit = await self.limiter.acquire()
        _count(self.stats, endpoint, requests=1, time_waiting=permit.waited)
        try:
            # httpx's timeout is per read: this bounds the whole response, body included.
            async with asyncio.timeout(min(self.limits.response_seconds, left)):
                return await self._http.get(path, params=params)
        except TimeoutError:
            permit.done()
            if time.monotonic() >= self._deadline:
                raise RunTooLongError(
                    self.host, self.limits.run_seconds, self.stats.requests
                ) from None
            if attempt >= min(self._max_tries, SLOW_RESPONSE_TRIES):
                raise SlowResponseError(self.host, self.limits.response_seconds, attempt) from None
            log.info("%s on %s: the response came too slowly; trying again", self.host, path)
        except httpx.TransportError as exc:
            permit.done()  # before backing off: the limiter counts it as arriving until then
            error, tries_left = self._transport_error(exc, attempt)
            if not tries_left:
                raise error from exc
            log.info("%s on %s: %s; trying again", self.host, endpoint, type(exc).__name__)
        finally:
            permit.done()
        await self._back_off(endpoint, attempt)
        return None

    def _classify(
        self,
        response: httpx.Response,
        permission: Permission,
        path: str,
        params: dict[str, str],
        parse: Callable[[bytes], T],
        device_id: str | None,
        attempt: int,
    ) -> "T | _Retry":
        """What a response means: the parsed body, another try, or the error to raise."""
        endpoint, status = permission.endpoint, response.status_code
        last = attempt == self._max_tries
        if status < 300:
            try:
                return parse(response.content)
            except BadShape as exc:
                raise self._malformed(path, str(exc)) from None
            except BadJSON as exc:
                if not _says_json(response):
                    raise self._malformed(path, "it is not JSON") from None
                if last:
                    raise self._malformed(path, "the JSON is invalid or cut short") from None
                log.info("%s on %s: unreadable JSON (%s); trying again", self.host, path, exc)
                return _Retry()
        if status < 400:
            location = urlsplit(response.headers.get("location", "")).hostname
            raise RedirectError(self.host, status, location and self._scrub(location))
        if status == 401:
            raise AuthenticationError(self.host)
        if status == 403:
            raise PermissionDeniedError(self.host, permission)
        if status == 404:
            if device_id is not None:
                raise DeviceNotFoundError(self.host, device_id)
            if "cursor" in params and "cursor" in self._detail(response).lower():
                raise InvalidCursorError(self.host)
            raise EndpointNotFoundError(self.host, path)
        retry_after = _retry_after(response.headers.get("retry-after"))
        if status == 429:
            _count(self.stats, endpoint, rate_limited=1)
            if retry_after is not None and retry_after > self._max_retry_after:
                raise RateLimitError(
                    self.host, tries=attempt, retry_after=retry_after, limit=self._max_retry_after
                )
            # Every caller of this tenant waits, not just this one: the limiter holds them.
            self.limiter.pause(
                retry_after if retry_after is not None else self._backoff_delay(attempt)
            )
            if last:
                raise RateLimitError(self.host, tries=attempt)
            log.info("%s on %s: 429 Too Many Requests; waiting", self.host, endpoint)
            _count(self.stats, endpoint, retries=1)
            return _Retry(back_off=False)
        if status >= 500:
            if last:
                raise ServerError(self.host, status, attempt)
            log.info("%s on %s: %d; trying again", self.host, endpoint, status)
            return _Retry(at_least=retry_after)
        raise UnexpectedResponseError(self.host, status, path, self._detail(response))

    def _transport_error(self, exc: httpx.TransportError, attempt: int) -> tuple[KandjiError, bool]:
        """The error to raise for `exc`, and whether another try is allowed."""
        last = attempt >= self._max_tries
        if isinstance(exc, httpx.TimeoutException):
            return KandjiTimeout(self.host, self._timeout, attempt), not last
        again = not last and attempt < NAME_OR_TLS_TRIES
        name_error = _find_cause(exc, socket.gaierror)
        if name_error is not None:
            return DNSError(self.host, name_error.strerror or "name lookup failed"), again
        tls_error = _find_cause(exc, ssl.SSLError)
        if tls_error is not None:
            return TLSError(self.host, _tls_reason(tls_error)), again
        return ConnectError(self.host, _connect_reason(exc), attempt), not last

    async def _back_off(self, endpoint: str, attempt: int, at_least: float | None = None) -> None:
        delay = max(self._backoff_delay(attempt), min(at_least or 0.0, self._max_retry_after))
        _count(self.stats, endpoint, retries=1, time_waiting=delay)
        await self._sleep(delay)

    def _backoff_delay(self, attempt: int) -> float:
        # Full jitter: callers that failed together do not come back together.
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def _malformed(self, path: str, problem: str) -> MalformedResponseError:
        return MalformedResponseError(self.host, path, self._scrub(problem))

    def _paging_error(self, listing: str, problem: str, pages: int, what_to_do: str) -> PagingError:
        return PagingError(self.host, listing, problem, pages, what_to_do)

    def _detail(self, response: httpx.Response) -> str:
        """The `detail` of a Django REST Framework error body, scrubbed, then shortened (a cut
        token would no longer be recognized)."""
        detail = self._scrub(_detail(response))
        return detail if len(detail) <= 200 else detail[:199] + "…"


def _checked_token(token: str) -> str:
    token = token.strip()
    if not token:
        raise InvalidTokenError(
            "No Kandji API token was given; create one in Kandji Settings → Access and pass it in."
        )
    # Never echo the value: whatever was given may be a real secret with a typo in it.
    if not all("!" <= ch <= "~" for ch in token):
        raise InvalidTokenError(
            "The Kandji API token contains spaces or characters a token never has; copy it again "
            "from Kandji Settings → Access."
        )
    return token


def _date_param(value: datetime | date | str) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _query_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _says_json(response: httpx.Response) -> bool:
    content_type = response.headers.get("content-type", "application/json").lower()
    return "json" in content_type


def _detail(response: httpx.Response) -> str:
    """The `detail` of a Django REST Framework error body, whitespace collapsed."""
    try:
        detail = orjson.loads(response.content).get("detail")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if not isinstance(detail, str):
        return ""
    return " ".join(detail.split())


def _digest(parts: Iterable[str]) -> bytes:
    return hashlib.blake2b("\n".join(parts).encode(), digest_size=16).digest()


def _as_utc(value: datetime | date | str | None) -> datetime | None:
    """A start_date as an aware UTC datetime, or None when there is none (or it is unreadable)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _wholly_before(events: list[AuditEvent], earliest: datetime | None) -> bool:
    """Whether every dated event of the page is older than `earliest` (False if none is dated)."""
    times = [when for event in events if (when := _occurred_at(event)) is not None]
    return earliest is not None and bool(times) and max(times) < earliest - START_SLACK


def _occurred_at(event: AuditEvent) -> datetime | None:
    """The event's occurred_at, or None if it has none Kandji could have written."""
    text = event.data.get("occurred_at") if isinstance(event.data, dict) else None
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _find_cause(exc: BaseException, kind: type[T]) -> T | None:
    return next((cause for cause in _causes(exc) if isinstance(cause, kind)), None)


def _tls_reason(error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate not trusted: {error.verify_message}"
    return error.reason or "handshake failed"


def _connect_reason(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was dropped"
    if isinstance(exc, httpx.ProxyError):
        return "the proxy refused the connection"
    refused = _find_cause(exc, ConnectionRefusedError)
    if refused is not None:
        return "connection refused"
    os_error = _find_cause(exc, OSError)
    if os_error is not None and os_error.strerror:
        return os_error.strerror.lower()
    return "the connection failed"
