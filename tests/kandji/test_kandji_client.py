"""The client against mocked responses (respx): paging, every status, retries and backoff, stats."""

import json
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from kandji_fakes import InstantTime

from kandji_bridge import __version__
from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import (
    AuthenticationError,
    ConnectError,
    DeviceNotFoundError,
    DNSError,
    EndpointNotFoundError,
    InvalidCursorError,
    InvalidTokenError,
    InvalidURLError,
    KandjiTimeout,
    MalformedResponseError,
    PagingError,
    PermissionDeniedError,
    RateLimitError,
    RedirectError,
    ServerError,
    TLSError,
    UnexpectedResponseError,
)
from kandji_bridge.kandji.permissions import AUDIT_EVENTS, DEVICE_DETAILS, DEVICE_LIST
from kandji_bridge.kandji.ratelimit import RateLimiter
from kandji_bridge.kandji.urls import ApiUrl

API = "https://acme.api.kandji.io"
HOST = "acme.api.kandji.io"
TOKEN = "3f1c9a7e-5b2d-4e8f-9a6b-1c2d3e4f5a6b"
AUDIT = "/api/v1/audit/events"
DEVICES = "/api/v1/devices"


@pytest.fixture
def client_factory(clock: InstantTime) -> Iterator[Callable[..., KandjiClient]]:
    def make(**options: Any) -> KandjiClient:
        limiter = RateLimiter(1000, 1_000_000, clock=clock.clock, sleep=clock.sleep)
        return KandjiClient(API, TOKEN, limiter=limiter, sleep=clock.sleep, **options)

    yield make


@pytest.fixture
def kandji() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


def _event(number: int) -> dict[str, Any]:
    return {"id": f"01EVENT{number:05d}", "action": "update", "new_state": {}, "metadata": {}}


def _audit_page(events: list[dict[str, Any]], cursor: str | None) -> httpx.Response:
    next_url = None if cursor is None else f"https://elsewhere.example/{AUDIT}?cursor={cursor}"
    return httpx.Response(200, json={"next": next_url, "previous": None, "results": events})


def _devices(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {"device_id": f"device-{n:05d}", "device_name": f"Mac {n}"}
        for n in range(first, first + count)
    ]


def _query(request: httpx.Request) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(request.url.query.decode()).items()}


async def _all_audit(client: KandjiClient, **options: Any) -> list[Any]:
    return [page async for page in client.iter_audit_pages(**options)]


async def _all_devices(client: KandjiClient, **options: Any) -> list[list[dict[str, Any]]]:
    return [page async for page in client.iter_device_pages(**options)]


# --- paging -------------------------------------------------------------------------------------


async def test_audit_paging_follows_the_cursor_on_our_own_host(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    route = kandji.get(AUDIT).mock(
        side_effect=[
            _audit_page([_event(1), _event(2)], "c2"),
            _audit_page([_event(3), _event(4)], "c3"),
            _audit_page([_event(5)], None),
        ]
    )
    async with client_factory() as client:
        pages = await _all_audit(client, limit=2, sort_by="-occurred_at")
    assert [[e.id for e in page.events] for page in pages] == [
        ["01EVENT00001", "01EVENT00002"],
        ["01EVENT00003", "01EVENT00004"],
        ["01EVENT00005"],
    ]
    assert [(page.cursor, page.next_cursor) for page in pages] == [
        (None, "c2"),
        ("c2", "c3"),
        ("c3", None),
    ]
    requests = [call.request for call in route.calls]
    assert {request.url.host for request in requests} == {HOST}  # never elsewhere.example
    assert [_query(r) for r in requests] == [
        {"limit": "2", "sort_by": "-occurred_at"},
        {"limit": "2", "sort_by": "-occurred_at", "cursor": "c2"},
        {"limit": "2", "sort_by": "-occurred_at", "cursor": "c3"},
    ]
    assert client.stats.requests == 3
    assert client.stats.by_endpoint[AUDIT_EVENTS.endpoint].requests == 3


async def test_audit_paging_resumes_from_a_cursor_and_sends_dates(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    route = kandji.get(AUDIT).mock(return_value=_audit_page([], None))
    aware = datetime(2025, 3, 4, 18, 29, 55, 253454, tzinfo=timezone(timedelta(hours=2)))
    async with client_factory() as client:
        pages = await _all_audit(
            client, cursor="resume-here", start_date=aware, end_date=date(2025, 3, 5)
        )
        await _all_audit(client, start_date=datetime(2025, 1, 2, 3, 4, 5), end_date="2025-12-06")
    assert pages[0].cursor == "resume-here"
    assert _query(route.calls[0].request) == {
        "limit": "500",
        "sort_by": "occurred_at",
        "start_date": "2025-03-04T16:29:55.253454Z",
        "end_date": "2025-03-05",
        "cursor": "resume-here",
    }
    assert _query(route.calls[1].request)["start_date"] == "2025-01-02T03:04:05.000000Z"
    assert _query(route.calls[1].request)["end_date"] == "2025-12-06"


async def test_audit_paging_stops_on_an_empty_page_and_refuses_a_cursor_loop(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(AUDIT).mock(return_value=_audit_page([], "tail"))
    async with client_factory() as client:
        pages = await _all_audit(client)
    assert len(pages) == 1 and pages[0].next_cursor == "tail"

    kandji.get(AUDIT).mock(return_value=_audit_page([_event(1)], "same"))
    async with client_factory() as client:
        with pytest.raises(PagingError, match=r"cursor cycle\) after 1 page,"):
            await _all_audit(client, cursor="same")


async def test_audit_arguments_are_checked(client_factory: Callable[..., KandjiClient]) -> None:
    async with client_factory() as client:
        with pytest.raises(ValueError):
            await _all_audit(client, sort_by="name")
        with pytest.raises(ValueError):
            await _all_audit(client, limit=501)


@pytest.mark.parametrize(("total", "calls"), [(0, 1), (10, 1), (300, 2), (610, 3), (900, 4)])
async def test_device_paging_by_offset_stops_on_a_short_page(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, total: int, calls: int
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        query = _query(request)
        offset, limit = int(query["offset"]), int(query["limit"])
        return httpx.Response(200, json=_devices(offset, max(0, min(limit, total - offset))))

    route = kandji.get(DEVICES).mock(side_effect=answer)
    async with client_factory() as client:
        pages = await _all_devices(client, platform="Mac", blueprint_id=None, archived=False)
    ids = [device["device_id"] for page in pages for device in page]
    assert ids == [f"device-{n:05d}" for n in range(total)]
    assert route.call_count == calls
    assert _query(route.calls[0].request) == {
        "platform": "Mac",
        "archived": "false",
        "limit": "300",
        "offset": "0",
    }


async def test_an_endpoint_ignoring_offset_is_an_error_not_a_loop(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    route = kandji.get(DEVICES).mock(return_value=httpx.Response(200, json=_devices(0, 5)))
    async with client_factory() as client:
        with pytest.raises(PagingError, match="ignores offset") as caught:
            await _all_devices(client, limit=5)
    assert route.call_count == 2
    assert HOST in str(caught.value)


async def test_a_single_device_object_is_one_device(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    route = kandji.get(DEVICES).mock(return_value=httpx.Response(200, json=_devices(7, 1)[0]))
    async with client_factory() as client:
        pages = await _all_devices(client, limit=1, serial_number="FVHHFKF7Q6L4")
    assert pages == [_devices(7, 1)]
    assert route.call_count == 1


async def test_device_details_quotes_the_id(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    route = kandji.get(url__regex=r"/api/v1/devices/.+/details").mock(
        return_value=httpx.Response(200, json={"general": {"device_id": "a/b"}})
    )
    async with client_factory() as client:
        details = await client.get_device_details("a/b?c")
        with pytest.raises(ValueError):
            await client.get_device_details("")
    assert details == {"general": {"device_id": "a/b"}}
    assert route.calls[0].request.url.raw_path == b"/api/v1/devices/a%2Fb%3Fc/details"


# --- statuses ------------------------------------------------------------------------------------


async def test_every_request_is_a_get_with_the_token_and_our_user_agent(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(AUDIT).mock(return_value=_audit_page([], None))
    kandji.get(DEVICES).mock(return_value=httpx.Response(200, json=[]))
    kandji.get(f"{DEVICES}/d1/details").mock(return_value=httpx.Response(200, json={}))
    async with client_factory() as client:
        await _all_audit(client)
        await _all_devices(client)
        await client.get_device_details("d1")
    assert len(kandji.calls) == 3
    for call in kandji.calls:
        assert call.request.method == "GET"
        assert call.request.headers["authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["user-agent"] == f"kandji-bridge/{__version__}"
        assert call.request.headers["accept"] == "application/json"


def test_get_only_by_construction() -> None:
    public = {name for name in dir(KandjiClient) if not name.startswith("_")}
    assert public == {
        "iter_audit_pages",
        "iter_device_pages",
        "get_device_details",
        "iter_admins",
        "aclose",
    }


@pytest.mark.parametrize(
    ("path", "call", "permission"),
    [
        (AUDIT, lambda c: _all_audit(c), AUDIT_EVENTS),
        (DEVICES, lambda c: _all_devices(c), DEVICE_LIST),
        (f"{DEVICES}/d1/details", lambda c: c.get_device_details("d1"), DEVICE_DETAILS),
    ],
)
async def test_403_names_the_missing_permission_and_how_to_grant_it(
    client_factory: Callable[..., KandjiClient],
    kandji: respx.MockRouter,
    path: str,
    call: Callable[[KandjiClient], Any],
    permission: Any,
) -> None:
    body = {"detail": "You do not have permission to perform this action."}
    route = kandji.get(path).mock(return_value=httpx.Response(403, json=body))
    async with client_factory() as client:
        with pytest.raises(PermissionDeniedError) as caught:
            await call(client)
    assert route.call_count == 1  # never retried
    assert caught.value.permission == permission
    message = str(caught.value)
    assert f'lacks the "{permission.label}" permission' in message
    assert permission.endpoint in message
    assert "Settings → Access, open the token, enable" in message
    assert HOST in message


async def test_403_on_audit_events_reads_as_the_issue_asks(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(AUDIT).mock(return_value=httpx.Response(403, json={"detail": "x"}))
    async with client_factory() as client:
        with pytest.raises(PermissionDeniedError) as caught:
            await _all_audit(client)
    assert str(caught.value) == (
        'The API token for acme.api.kandji.io lacks the "List audit events" permission (403); in '
        'Kandji open Settings → Access, open the token, enable "List audit events" '
        "(GET /api/v1/audit/events) and save."
    )


async def test_401_means_a_new_token(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    body = {"detail": "Invalid token."}
    route = kandji.get(DEVICES).mock(return_value=httpx.Response(401, json=body))
    async with client_factory() as client:
        with pytest.raises(AuthenticationError) as caught:
            await _all_devices(client)
    assert route.call_count == 1
    assert "wrong, revoked or expired" in str(caught.value)
    assert "create a new token in Kandji Settings → Access" in str(caught.value)


async def test_404_on_a_list_is_a_wrong_url_and_on_details_a_missing_device(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(AUDIT).mock(return_value=httpx.Response(404, text="<h1>Not Found</h1>"))
    kandji.get(f"{DEVICES}/gone/details").mock(return_value=httpx.Response(404, json={}))
    async with client_factory() as client:
        with pytest.raises(EndpointNotFoundError) as wrong_url:
            await _all_audit(client)
        with pytest.raises(DeviceNotFoundError) as missing:
            await client.get_device_details("gone")
    assert type(wrong_url.value) is EndpointNotFoundError
    assert "API URL or its subdomain is wrong" in str(wrong_url.value)
    assert "https://YOUR_SUBDOMAIN.api.kandji.io" in str(wrong_url.value)
    assert missing.value.device_id == "gone"
    assert "no device gone" in str(missing.value)
    assert len(kandji.calls) == 2


async def test_404_for_a_cursor_kandji_cannot_read(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(AUDIT).mock(return_value=httpx.Response(404, json={"detail": "Invalid cursor"}))
    async with client_factory() as client:
        with pytest.raises(InvalidCursorError) as caught:
            await _all_audit(client, cursor="bm9wZQ==")
        with pytest.raises(EndpointNotFoundError):  # without a cursor it is the URL that is wrong
            await _all_audit(client)
    assert "page again from a start date" in str(caught.value)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_never_followed(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, status: int
) -> None:
    kandji.get(AUDIT).mock(
        return_value=httpx.Response(status, headers={"Location": "http://169.254.169.254/latest"})
    )
    metadata = respx.get("http://169.254.169.254/latest").mock(return_value=httpx.Response(200))
    async with client_factory() as client:
        with pytest.raises(RedirectError) as caught:
            await _all_audit(client)
    assert not metadata.called
    assert len(kandji.calls) == 1
    assert f"redirect ({status}) to 169.254.169.254" in str(caught.value)
    assert "never follows" in str(caught.value)


async def test_other_statuses_carry_kandjis_detail(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(DEVICES).mock(
        return_value=httpx.Response(400, json={"detail": "Invalid\n  ordering field."})
    )
    async with client_factory() as client:
        with pytest.raises(UnexpectedResponseError) as caught:
            await _all_devices(client, ordering="nope")
    assert caught.value.status == 400
    assert "answered 400 for /api/v1/devices: Invalid ordering field;" in str(caught.value)


# --- retries -------------------------------------------------------------------------------------


async def test_429_waits_for_retry_after_seconds_then_succeeds(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, clock: InstantTime
) -> None:
    route = kandji.get(DEVICES).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3"}, json={"detail": "Throttled."}),
            httpx.Response(429, headers={"Retry-After": "2"}),
            httpx.Response(200, json=[]),
        ]
    )
    async with client_factory() as client:
        await _all_devices(client)
    assert route.call_count == 3
    assert sum(clock.slept) == pytest.approx(5.0)
    stats = client.stats
    assert (stats.requests, stats.retries, stats.rate_limited) == (3, 2, 2)
    assert stats.time_waiting == pytest.approx(5.0)
    assert stats.by_endpoint[DEVICE_LIST.endpoint].rate_limited == 2


async def test_429_pauses_every_caller_of_the_tenant(
    kandji: respx.MockRouter, clock: InstantTime
) -> None:
    limiter = RateLimiter(1000, 1_000_000, clock=clock.clock, sleep=clock.sleep)
    kandji.get(DEVICES).mock(side_effect=[httpx.Response(429, headers={"Retry-After": "30"})])
    kandji.get(AUDIT).mock(return_value=_audit_page([], None))
    first = KandjiClient(API, TOKEN, limiter=limiter, max_tries=1, sleep=clock.sleep)
    second = KandjiClient(API, TOKEN, limiter=limiter, sleep=clock.sleep)
    async with first, second:
        with pytest.raises(RateLimitError):
            await _all_devices(first)
        await _all_audit(second)
    assert second.stats.time_waiting == pytest.approx(30.0)


async def test_retry_after_as_an_http_date(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, clock: InstantTime
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=42), usegmt=True)
    kandji.get(AUDIT).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": when}), _audit_page([], None)]
    )
    async with client_factory() as client:
        await _all_audit(client)
    assert 38 <= sum(clock.slept) <= 42


async def test_retry_after_in_the_past_or_garbled_still_retries(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, clock: InstantTime
) -> None:
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    route = kandji.get(AUDIT).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": past}),
            httpx.Response(429, headers={"Retry-After": "soon"}),
            httpx.Response(429),
            _audit_page([], None),
        ]
    )
    async with client_factory(backoff_base=0.5, backoff_cap=30) as client:
        await _all_audit(client)
    assert route.call_count == 4
    assert sum(clock.slept) <= 0.5 * 2 + 0.5 * 4


async def test_a_retry_after_longer_than_allowed_fails_at_once(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, clock: InstantTime
) -> None:
    route = kandji.get(AUDIT).mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"})
    )
    async with client_factory(max_retry_after=300) as client:
        with pytest.raises(RateLimitError) as caught:
            await _all_audit(client)
    assert route.call_count == 1
    assert clock.slept == []
    assert "asked to wait 3600 s, longer than the 300 s allowed" in str(caught.value)
    assert "try again later" in str(caught.value)


async def test_429_until_the_tries_run_out(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    route = kandji.get(AUDIT).mock(return_value=httpx.Response(429, headers={"Retry-After": "1"}))
    async with client_factory(max_tries=4) as client:
        with pytest.raises(RateLimitError) as caught:
            await _all_audit(client)
    assert route.call_count == 4
    assert client.stats.rate_limited == 4
    assert "still answered 429 Too Many Requests after 4 tries" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_with_capped_jittered_backoff(
    client_factory: Callable[..., KandjiClient],
    kandji: respx.MockRouter,
    clock: InstantTime,
    status: int,
) -> None:
    route = kandji.get(AUDIT).mock(return_value=httpx.Response(status, text="upstream error"))
    async with client_factory(max_tries=8, backoff_base=0.5, backoff_cap=4.0) as client:
        with pytest.raises(ServerError) as caught:
            await _all_audit(client)
    assert route.call_count == 8
    assert caught.value.status == status
    assert f"answered {status} (a server error) after 8 tries" in str(caught.value)
    assert len(clock.slept) == 7
    for attempt, delay in enumerate(clock.slept, 1):
        assert 0 <= delay <= min(4.0, 0.5 * 2 ** (attempt - 1))
    assert client.stats.retries == 7
    assert client.stats.time_waiting == pytest.approx(sum(clock.slept))


async def test_a_503_retry_after_is_honoured(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, clock: InstantTime
) -> None:
    kandji.get(AUDIT).mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "9"}), _audit_page([], None)]
    )
    async with client_factory() as client:
        await _all_audit(client)
    assert clock.slept == [pytest.approx(9.0)]


async def test_a_server_error_then_success(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(DEVICES).mock(
        side_effect=[httpx.Response(502), httpx.Response(500), httpx.Response(200, json=[])]
    )
    async with client_factory() as client:
        assert await _all_devices(client) == [[]]
    assert (client.stats.requests, client.stats.retries) == (3, 2)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("Connection reset by peer"),
        httpx.ConnectError("[Errno 111] Connection refused"),
    ],
)
async def test_transport_failures_are_retried(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter, failure: Exception
) -> None:
    route = kandji.get(AUDIT).mock(side_effect=[failure, failure, _audit_page([], None)])
    async with client_factory() as client:
        await _all_audit(client)
    assert route.call_count == 3
    assert client.stats.retries == 2


async def test_timeouts_until_the_tries_run_out(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(AUDIT).mock(side_effect=httpx.ReadTimeout("timed out"))
    async with client_factory(max_tries=3, timeout=12.5) as client:
        with pytest.raises(KandjiTimeout) as caught:
            await _all_audit(client)
    assert str(caught.value) == (
        "acme.api.kandji.io did not answer within 12.5 s (3 tries); check the network and proxy "
        "settings, or try again later."
    )


async def test_dropped_connections_until_the_tries_run_out(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    kandji.get(AUDIT).mock(side_effect=httpx.RemoteProtocolError("Server disconnected"))
    async with client_factory(max_tries=2) as client:
        with pytest.raises(ConnectError) as caught:
            await _all_audit(client)
    assert "Cannot reach acme.api.kandji.io (the connection was dropped, 2 tries)" in str(
        caught.value
    )


def _failing_transport(cause: BaseException) -> httpx.MockTransport:
    """A transport failing as httpx does: a ConnectError caused by the socket-level error.

    (respx replaces an exception's cause with its own, so these use httpx.MockTransport.)
    """
    calls: list[httpx.Request] = []

    def fail(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError(str(cause), request=request) from cause

    transport = httpx.MockTransport(fail)
    transport.calls = calls  # type: ignore[attr-defined]
    return transport


async def test_dns_failure_is_tried_twice_and_says_check_the_subdomain(
    client_factory: Callable[..., KandjiClient],
) -> None:
    transport = _failing_transport(socket.gaierror(-2, "Name or service not known"))
    async with client_factory(transport=transport) as client:
        with pytest.raises(DNSError) as caught:
            await _all_audit(client)
    assert len(transport.calls) == 2  # type: ignore[attr-defined]
    assert str(caught.value).startswith(
        "The host acme.api.kandji.io could not be found (Name or service not known); check the "
        "subdomain in the API URL"
    )


async def test_tls_failure_is_tried_twice_and_names_the_reason(
    client_factory: Callable[..., KandjiClient],
) -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate in certificate chain"
    transport = _failing_transport(cause)
    async with client_factory(transport=transport) as client:
        with pytest.raises(TLSError) as caught:
            await _all_audit(client)
    assert len(transport.calls) == 2  # type: ignore[attr-defined]
    assert "certificate not trusted: self-signed certificate in certificate chain" in str(
        caught.value
    )
    assert "SSL_CERT_FILE" in str(caught.value)


# --- bodies --------------------------------------------------------------------------------------


async def test_cut_json_is_retried_and_then_reported(
    client_factory: Callable[..., KandjiClient], kandji: respx.MockRouter
) -> None:
    good = json.dumps({"next": None, "results": [_event(1)]})
    cut = httpx.Response(200, text=good[:20], headers={"Content-Type": "application/json"})
    route = kandji.get(AUDIT).mock(side_effect=[cut, cut, httpx.Response(200, text=good)])
    async with client_factory() as client:
        pages = await _all_audit(client)
    assert route.call_count == 3
    assert pages[0].events[0].raw == json.dumps(_event(1))

    kandji.get(AUDIT).mock(return_value=cut)
    async with client_factory(max_tries=3) as client:
        with pytest.raises(MalformedResponseError) as caught:
            await _all_audit(client)
    assert "the JSON is invalid or cut short" in str(caught.value)


@pytest.mark.parametrize(
    ("path", "call", "response", "problem"),
    [
        (AUDIT, _all_audit, httpx.Response(200, html="<html>Sign in</html>"), "it is not JSON"),
        (AUDIT, _all_audit, httpx.Response(200, json={"detail": "x"}), 'no "results" list'),
        (AUDIT, _all_audit, httpx.Response(200, json={"results": [], "next": 7}), "not a URL"),
        (DEVICES, _all_devices, httpx.Response(200, json={"results": []}), "not a device"),
        (DEVICES, _all_devices, httpx.Response(200, json=5), "not a list of devices"),
    ],
)
async def test_wrong_shapes_are_reported_without_retrying(
    client_factory: Callable[..., KandjiClient],
    kandji: respx.MockRouter,
    path: str,
    call: Callable[..., Any],
    response: httpx.Response,
    problem: str,
) -> None:
    route = kandji.get(path).mock(return_value=response)
    async with client_factory() as client:
        with pytest.raises(MalformedResponseError) as caught:
            await call(client)
    assert route.call_count == 1
    assert problem in str(caught.value)
    assert f"Kandji at {HOST} sent a response to {path}" in str(caught.value)


# --- construction --------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "   ", "abc def", "tök", "abc\ndef"])
def test_tokens_that_cannot_be_tokens_are_refused_without_echo(token: str) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        KandjiClient(API, token)
    if token.strip():
        assert token.strip() not in str(caught.value)
    assert "Kandji Settings → Access" in str(caught.value)


async def test_a_token_is_trimmed(kandji: respx.MockRouter) -> None:
    kandji.get(DEVICES).mock(return_value=httpx.Response(200, json=[]))
    async with KandjiClient(API, f"  {TOKEN}\n") as client:
        await _all_devices(client)
    assert kandji.calls[0].request.headers["authorization"] == f"Bearer {TOKEN}"


def test_string_urls_are_checked_against_the_allowed_hosts_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The environment is not the client's to read: the caller passes its Settings' hosts.
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", "127.0.0.1:8089")
    with pytest.raises(InvalidURLError):
        KandjiClient("http://127.0.0.1:8089", TOKEN)
    allowed = frozenset({"127.0.0.1:8089"})
    client = KandjiClient("http://127.0.0.1:8089", TOKEN, allowed_hosts=allowed)
    assert client.api_url == ApiUrl("http://127.0.0.1:8089")
    derived = KandjiClient("https://acme.kandji.io", TOKEN)
    assert derived.api_url.base_url == API
    assert derived.host == HOST


def test_repr_shows_the_url_not_the_token() -> None:
    client = KandjiClient(API, TOKEN)
    assert repr(client) == "KandjiClient('https://acme.api.kandji.io')"
    assert TOKEN not in repr(vars(client))
    with pytest.raises(ValueError):
        KandjiClient(API, TOKEN, max_tries=0)


def test_a_shared_limiter_by_default() -> None:
    assert KandjiClient(API, TOKEN).limiter is KandjiClient(API + "/api/v1", TOKEN).limiter


def test_the_query_helper_reads_what_was_sent() -> None:
    request = httpx.Request("GET", f"{API}{AUDIT}", params={"cursor": "a+b=="})
    assert _query(request) == {"cursor": "a+b=="}
    assert urlsplit(str(request.url)).path == AUDIT
