"""A hostile ClickHouse: a small HTTP server in front of the ClickHouse HTTP test fixture that
passes every request on, except those a test's rule answers itself (an old version, a missing
grant) or drops (the connection closed after the fixture ran the request, before any answer).
It runs in a thread of the test process."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

DROP = object()  # a rule's answer: run the request on the fixture, then close without answering


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


Rule = Callable[[bytes], "Answer | object | None"]  # the request's body -> what to do (None: pass)


@dataclass
class HostileClickHouse:
    upstream: str  # the fixture's http://127.0.0.1:PORT
    rules: list[Rule] = field(default_factory=list)
    port: int = 0
    seen: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)  # each request's path and query (settings)

    def url(self, user: str, password: str, database: str) -> str:
        return f"clickhouse://{user}:{password}@127.0.0.1:{self.port}/{database}"


def old_version(version: str) -> Rule:
    """Answer clickhouse-connect's `SELECT version(), timezone()` with `version`."""

    def rule(body: bytes) -> Answer | None:
        if b"SELECT version(), timezone()" in body:
            return Answer(200, f"{version}\tUTC\n".encode())
        return None

    return rule


def missing_grant(statement: bytes, user: str, grant: str) -> Rule:
    """Refuse statements starting with `statement` as ClickHouse refuses a missing grant."""

    def rule(body: bytes) -> Answer | None:
        if body.lstrip().upper().startswith(statement):
            text = (
                f"Code: 497. DB::Exception: {user}: Not enough privileges. To execute this "
                f"query, it's necessary to have the grant {grant}. (ACCESS_DENIED) "
                "(version 24.8.4.13 (official build))\n"
            )
            return Answer(500, text.encode(), {"X-ClickHouse-Exception-Code": "497"})
        return None

    return rule


def drop_first(statement: bytes) -> Rule:
    """The first request starting with `statement` runs, and its answer is lost."""
    dropped: list[bytes] = []

    def rule(body: bytes) -> object | None:
        if body.lstrip().upper().startswith(statement) and not dropped:
            dropped.append(body)
            return DROP
        return None

    return rule


class _Handler(BaseHTTPRequestHandler):
    hostile: HostileClickHouse
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.hostile.seen.append(body)
        self.hostile.paths.append(self.path)
        action = next((a for rule in self.hostile.rules if (a := rule(body)) is not None), None)
        if isinstance(action, Answer):
            self._send(action.status, action.body, action.headers)
            return
        passed = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in ("host", "content-length", "accept-encoding", "connection")
        }
        response = httpx.request(
            method,
            self.hostile.upstream + self.path,
            content=body,
            headers=passed,
            timeout=120,
        )
        if action is DROP:
            self.close_connection = True  # the request ran; its answer never arrives
            return
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("x-click")}
        self._send(response.status_code, response.content, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def hostile_clickhouse(upstream: str, *rules: Rule) -> Iterator[HostileClickHouse]:
    hostile = HostileClickHouse(upstream, list(rules))
    handler = type("Handler", (_Handler,), {"hostile": hostile})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    hostile.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hostile
    finally:
        server.shutdown()
        server.server_close()


def database_of(url: str) -> str:
    return urlsplit(url).path.strip("/")
