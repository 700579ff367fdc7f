"""A hostile Kandji: a small real HTTP server whose misbehaviour each test switches on.

Left alone it answers like Kandji: Bearer auth, DRF-style errors, audit pages in `occurred_at`
order behind an opaque `next` cursor (start_date honoured), and a bare device array paged by
`offset`. A test replaces `audit`, `device_list` or `device_details` with a behaviour (a function
of the request and the server) to make it misbehave: the factories below are the usual ones.
Events are kept as JSON text, so an event can be anything a server could send, valid or not.
The server runs in a thread of the test process; kandji-bridge reaches it over real sockets,
from this process or from real `kandji-bridge` processes.
"""

import base64
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

AUDIT_PATH = "/api/v1/audit/events"
DEVICES_PATH = "/api/v1/devices"
ADMINS_PATH = "/api/v1/admins"


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]
    headers: dict[str, str]  # names in lower case

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    byte_delay: float = 0.0  # seconds between two bytes of the body: a server that trickles


Behaviour = Callable[[Request, "HostileKandji"], Reply]


def json_reply(value: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=json.dumps(value).encode())


def event(
    event_id: object = None,
    occurred_at: datetime | str | None = None,
    action: str = "device.view",
    **fields: Any,
) -> str:
    """One audit event as Kandji writes it, as JSON text; any field may be overridden."""
    when = occurred_at or datetime.now(UTC)
    if isinstance(when, datetime):
        when = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {
        "id": event_id if event_id is not None else f"01J{random.getrandbits(100):020X}"[:26],
        "action": action,
        "occurred_at": when,
        "actor_id": "6e1d8c8c-3c4c-4b52-9b44-0c7e6c2f7a10",
        "actor_type": "user",
        "target_id": "a3b5b1a2-2a43-4f3e-9d6b-5b7f2a9f0d11",
        "target_type": "device",
        "target_component": "Device",
        "new_state": {},
        "metadata": {},
        **fields,
    }
    return json.dumps(body)


def events_over(count: int, start: datetime, step: timedelta = timedelta(seconds=1)) -> list[str]:
    """`count` valid events, one every `step` from `start`, with ULID-like ids in time order."""
    return [event(f"01HOSTILE{i:017d}", start + i * step) for i in range(count)]


def audit_page(raw_events: list[str], next_url: str | None) -> Reply:
    """An audit page whose results are exactly these event texts."""
    next_json = json.dumps(next_url)
    body = f'{{"next": {next_json}, "previous": null, "results": [{", ".join(raw_events)}]}}'
    return Reply(body=body.encode())


def _occurred_at(raw: str) -> datetime | None:
    try:
        text = json.loads(raw)["occurred_at"]
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def _start_date(request: Request) -> datetime | None:
    text = request.params.get("start_date")
    if not text:
        return None
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _cursor(offset: int) -> str:
    return base64.b64encode(f"o:{offset}".encode()).decode()


def _offset(request: Request) -> int:
    cursor = request.params.get("cursor")
    return int(base64.b64decode(cursor).decode()[2:]) if cursor else 0


def _limit(request: Request, largest: int) -> int:
    return min(int(request.params.get("limit") or largest), largest)


def kandji_audit(request: Request, server: "HostileKandji") -> Reply:
    """Audit pages as Kandji serves them: events from start_date on, in the order stored."""
    start = _start_date(request)
    chosen = [
        raw
        for raw in server.events
        if start is None or (when := _occurred_at(raw)) is None or when >= start
    ]
    offset, limit = _offset(request), _limit(request, 500)
    page = chosen[offset : offset + limit]
    following = offset + len(page)
    return audit_page(
        page, server.next_url(request, _cursor(following)) if following < len(chosen) else None
    )


def kandji_device_list(request: Request, server: "HostileKandji") -> Reply:
    offset = int(request.params.get("offset") or 0)
    return json_reply(server.devices[offset : offset + _limit(request, 300)])


def no_admin_list(request: Request, server: "HostileKandji") -> Reply:
    """Kandji's OpenAPI file does not document the admin list: by default, this server has none."""
    return json_reply({"detail": "Not found."}, status=404)


def kandji_device_details(request: Request, server: "HostileKandji") -> Reply:
    device_id = request.path.split("/")[4]
    for device in server.devices:
        if device["device_id"] == device_id:
            return json_reply(
                {"general": {"device_id": device_id, "device_name": device.get("device_name", "")}}
            )
    return json_reply({"detail": "Not found."}, status=404)


def cycling_cursor(period: int, page: list[str] | None = None) -> Behaviour:
    """`next` cursors that go round a cycle of `period` pages (A→B→A for 2), forever."""

    def audit(request: Request, server: "HostileKandji") -> Reply:
        position = _offset(request)
        following = (position + 1) % period
        return audit_page(
            page if page is not None else server.events[:1],
            server.next_url(request, _cursor(following)),
        )

    return audit


def endless_cursor(per_page: int = 1, start: datetime | None = None) -> Behaviour:
    """A cursor chain that never ends: every page has new events and a new `next`."""
    first = start or datetime.now(UTC) - timedelta(days=30)

    def audit(request: Request, server: "HostileKandji") -> Reply:
        position = _offset(request)
        raws = [
            event(f"01ENDLESS{position * per_page + i:017d}", first + timedelta(seconds=position))
            for i in range(per_page)
        ]
        return audit_page(raws, server.next_url(request, _cursor(position + 1)))

    return audit


def echo_token(status: int = 400, html: bool = False) -> Behaviour:
    """An error that repeats the request's Authorization header back (a chatty proxy or API)."""

    def reply(request: Request, server: "HostileKandji") -> Reply:
        said = f"Invalid header: Authorization: {request.authorization}"
        if html:
            return Reply(status, f"<html><body><h1>{said}</h1></body></html>".encode(), "text/html")
        return json_reply({"detail": said}, status=status)

    return reply


def trickling(behaviour: Behaviour, byte_delay: float) -> Behaviour:
    """`behaviour`'s answers, sent one byte every `byte_delay` seconds."""

    def reply(request: Request, server: "HostileKandji") -> Reply:
        answer = behaviour(request, server)
        answer.byte_delay = byte_delay
        return answer

    return reply


def offset_ignored_shuffled(request: Request, server: "HostileKandji") -> Reply:
    """A full device page whatever the offset, in a new order every time."""
    page = server.devices[: _limit(request, 300)]
    return json_reply(random.sample(page, len(page)))


def cycling_pages(period: int, per_page: int = 2) -> Behaviour:
    """`period` different pages of new-looking events whose `next` cursors go round (A→B→C→A)."""
    start = datetime.now(UTC) - timedelta(days=1)

    def audit(request: Request, server: "HostileKandji") -> Reply:
        position = _offset(request)
        raws = [
            event(f"01CYCLE{position:03d}{i:016d}", start + timedelta(minutes=position, seconds=i))
            for i in range(per_page)
        ]
        return audit_page(raws, server.next_url(request, _cursor((position + 1) % period)))

    return audit


def renamed_cycle(period: int) -> Behaviour:
    """The same `period` pages over and over, each time under a cursor never sent before."""
    start = datetime.now(UTC) - timedelta(days=1)

    def audit(request: Request, server: "HostileKandji") -> Reply:
        position = _offset(request)
        page = position % period
        raws = [event(f"01RENAMED{page:017d}", start + timedelta(minutes=page))]
        return audit_page(raws, server.next_url(request, _cursor(position + 1)))

    return audit


def endless_chain(start: datetime, step: timedelta, per_page: int = 1) -> Behaviour:
    """A cursor chain that never ends, page N dated `start + N * step`: before the start_date
    asked, or past now, as `start` and `step` say."""

    def audit(request: Request, server: "HostileKandji") -> Reply:
        position = _offset(request)
        raws = [
            event(f"01CHAIN{position:010d}{i:09d}", start + position * step)
            for i in range(per_page)
        ]
        return audit_page(raws, server.next_url(request, _cursor(position + 1)))

    return audit


def devices(count: int, prefix: str = "device") -> list[dict[str, Any]]:
    """`count` listed devices as Kandji's device list has them."""
    return [
        {
            "device_id": f"00000000-0000-4000-8000-{number:012d}",
            "device_name": f"{prefix}-{number}",
            "serial_number": f"C02HOSTILE{number:05d}",
            "last_check_in": "2026-12-01T10:00:00.000000Z",
        }
        for number in range(count)
    ]


def endless_devices(request: Request, server: "HostileKandji") -> Reply:
    """A full page of devices never listed before, whatever the offset: a list without end."""
    offset, limit = int(request.params.get("offset") or 0), _limit(request, 300)
    page = devices(offset + limit)[offset:]
    return json_reply(page)


def echo_token_header(status: int = 401, header: str = "WWW-Authenticate") -> Behaviour:
    """An error whose `header` (and a plain-text body) repeat the request's token back."""

    def reply(request: Request, server: "HostileKandji") -> Reply:
        said = request.authorization
        body = f"Refused: {said}".encode()
        return Reply(status, body, "text/plain", headers={header: said})

    return reply


def echo_token_encoded(status: int = 400) -> Behaviour:
    """An error detail that echoes the token URL-encoded and inside a Basic credential."""

    def reply(request: Request, server: "HostileKandji") -> Reply:
        token = request.authorization.removeprefix("Bearer ")
        basic = base64.b64encode(f"api:{token}".encode()).decode()
        said = f"Bad credentials {quote(token, safe='')} (as Basic {basic})"
        return json_reply({"detail": said}, status=status)

    return reply


def echo_token_redirect(request: Request, server: "HostileKandji") -> Reply:
    """A redirect to a host named after the token, with the token in the query too."""
    token = request.authorization.removeprefix("Bearer ")
    location = f"https://{token}.proxy.example/login?auth={quote(request.authorization)}"
    return Reply(302, b"", "text/plain", headers={"Location": location})


@dataclass
class HostileKandji:
    token: str = "hostile-token-5f0c2a9e7b1d4c3a8e6f"
    events: list[str] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    audit: Behaviour = kandji_audit
    device_list: Behaviour = kandji_device_list
    device_details: Behaviour = kandji_device_details
    admins: Behaviour = no_admin_list
    requests: list[Request] = field(default_factory=list)
    host_port: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"

    def next_url(self, request: Request, cursor: str) -> str:
        return (
            f"{self.url}{request.path}?cursor={cursor}&limit={request.params.get('limit', '500')}"
        )

    def answer(self, request: Request) -> Reply:
        self.requests.append(request)
        if request.authorization != f"Bearer {self.token}":
            return json_reply({"detail": "Invalid token."}, status=401)
        if request.path == AUDIT_PATH:
            return self.audit(request, self)
        if request.path == DEVICES_PATH:
            return self.device_list(request, self)
        if request.path.startswith(DEVICES_PATH + "/") and request.path.endswith("/details"):
            return self.device_details(request, self)
        if request.path == ADMINS_PATH:
            return self.admins(request, self)
        return json_reply({"detail": "Not found."}, status=404)

    def count(self, path: str) -> int:
        return sum(1 for request in self.requests if request.path == path)


def _handler(server: HostileKandji) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            request = Request(
                url.path,
                dict(parse_qsl(url.query)),
                {name.lower(): value for name, value in self.headers.items()},
            )
            reply = server.answer(request)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            try:
                if reply.byte_delay:
                    for index in range(len(reply.body)):
                        self.wfile.write(reply.body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(reply.byte_delay)
                else:
                    self.wfile.write(reply.body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def running(server: HostileKandji | None = None) -> Iterator[HostileKandji]:
    """Serve `server` (a well-behaved one if None) on 127.0.0.1 until the block ends."""
    server = server or HostileKandji()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    httpd.block_on_close = False
    server.host_port = f"127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


def kandji_bridge(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `kandji-bridge ARGS` as a real process (the environment is this test's, plus `env`)."""
    return subprocess.run(
        [sys.executable, "-m", "kandji_bridge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


def add_source(server: HostileKandji, name: str = "acme") -> None:
    """Register `server` as source `name` through the real CLI (it must pass the checks)."""
    done = kandji_bridge(
        "source",
        "add",
        "--name",
        name,
        "--url",
        server.url,
        "--token-env",
        "HOSTILE_TOKEN",
        env={"HOSTILE_TOKEN": server.token},
    )
    assert done.returncode == 0, done.stdout + done.stderr


def start_date_ignored(request: Request, server: "HostileKandji") -> Reply:
    """Every event on every pass, whatever start_date asks: a server that ignores the filter."""
    offset, limit = _offset(request), _limit(request, 500)
    page = server.events[offset : offset + limit]
    following = offset + len(page)
    more = following < len(server.events)
    return audit_page(page, server.next_url(request, _cursor(following)) if more else None)


def with_bytes(behaviour: Behaviour, marker: str, replacement: bytes) -> Behaviour:
    """`behaviour`'s answers with each `marker` in the body replaced by raw bytes (say, bytes
    that are not UTF-8, which an event's JSON text cannot hold)."""

    def reply(request: Request, server: "HostileKandji") -> Reply:
        answer = behaviour(request, server)
        answer.body = answer.body.replace(marker.encode(), replacement)
        return answer

    return reply


def event_with(drop: tuple[str, ...] = (), **fields: Any) -> str:
    """An event as `event` makes it, with `fields` set to any JSON value (null included) and the
    keys in `drop` left out."""
    body = {**json.loads(event()), **fields}
    return json.dumps({key: value for key, value in body.items() if key not in drop})
