"""A test fixture, not a ClickHouse server: a small threaded HTTP server that speaks the part of
ClickHouse's HTTP interface clickhouse-connect uses, and runs every request on chDB (ClickHouse's
engine, in this process) on one data folder. Several processes can so reach one real engine
through the real client, as they would reach a server.

What it speaks: the query in the body, in the `query` parameter, or both (the parameter, a
newline, then the body, as ClickHouse joins them; an INSERT's data follows its `FORMAT` clause);
`param_NAME` bound parameters; `database` (or `X-ClickHouse-Database`); `default_format` (or
`X-ClickHouse-Format`); every other URL parameter as a setting of that request; `session_id`
(a session keeps its `SET` and `USE` statements, and refuses a second concurrent request as
ClickHouse does); basic auth, `X-ClickHouse-User`/`X-ClickHouse-Key` or `user`/`password`
parameters against the users given on the command line; request bodies compressed with gzip,
deflate, lz4 or zstd (`Content-Encoding`), and responses compressed when the client asks
(`enable_http_compression=1` and `Accept-Encoding`); `/ping`. Answers carry the
`X-ClickHouse-Summary`, `-Format`, `-Timezone` and `-Query-Id` headers, and an error is
ClickHouse's own text (`Code: N. DB::Exception: ...`) with `X-ClickHouse-Exception-Code` and the
HTTP status ClickHouse gives that code.

What it does not do: TLS, clusters and replication, grants (every user it knows may do anything),
session timeouts, temporary tables across requests, multipart external data, progress headers;
on chdb-core-lite an INSERT's written rows are the rows of its data (see `_written`).

Run it as a process (the pytest fixture `clickhouse_url` does, so its engine never shares the
test process with an embedded store):

    python -m tests.support.clickhouse_http --path DIR --port 8123 [--user NAME:PASSWORD ...]

It prints its URL (`http://127.0.0.1:PORT`) on the first line of stdout once it answers.
"""

import argparse
import base64
import gzip
import json
import os
import re
import subprocess
import sys
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# URL parameters that steer the HTTP interface; every other one is a setting of the request.
_NOT_SETTINGS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "quota_key",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
    }
)
# The HTTP status ClickHouse answers with for an exception code (others: 500).
_STATUS = {
    194: 401,  # REQUIRED_PASSWORD
    192: 403,  # UNKNOWN_USER
    193: 403,  # WRONG_PASSWORD
    497: 403,  # ACCESS_DENIED
    516: 403,  # AUTHENTICATION_FAILED
    6: 400,  # CANNOT_PARSE_TEXT
    27: 400,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    36: 400,  # BAD_ARGUMENTS
    53: 400,  # TYPE_MISMATCH
    62: 400,  # SYNTAX_ERROR
    115: 400,  # UNKNOWN_SETTING
    164: 400,  # READONLY
    46: 404,  # UNKNOWN_FUNCTION
    47: 404,  # UNKNOWN_IDENTIFIER
    50: 404,  # UNKNOWN_TYPE
    60: 404,  # UNKNOWN_TABLE
    81: 404,  # UNKNOWN_DATABASE
    159: 408,  # TIMEOUT_EXCEEDED
    48: 501,  # NOT_IMPLEMENTED
}
_CODE = re.compile(r"Code: (\d+)\.")
_INSERT_DATA = re.compile(
    rb"\A\s*INSERT\s+INTO\s.*?\bFORMAT\s+([A-Za-z0-9_]+)[ \t]*(?:\r?\n)?", re.I | re.S
)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*\Z", re.I)
_FIRST_WORD = re.compile(r"\A(?:\s|--[^\n]*\n|/\*.*?\*/)*([A-Za-z]+)", re.S)
_TEXT_FORMAT = "TabSeparated"


class ClickHouseError(Exception):
    """A request ClickHouse would refuse: its code, name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code = code


@dataclass
class _Session:
    """What a ClickHouse HTTP session keeps between requests: its SET and USE statements."""

    statements: list[str] = field(default_factory=list)
    database: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class Request:
    method: str
    params: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes


class Engine:
    """chDB on one folder: a connection of its own for each request, on the shared engine."""

    def __init__(self, path: str, users: dict[str, str]) -> None:
        from chdb import session as chdb_session  # here: a test process that only starts one

        self._open = chdb_session.Session
        self.path = path
        self.users = users
        self._anchor = self._open(path)  # keeps the engine up between requests
        version, zone = self._anchor.query("SELECT version(), timezone()", "TSV").bytes().split()
        self.version = version.decode()
        self.timezone = zone.decode()
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()

    def close(self) -> None:
        self._anchor.close()

    def handle(self, request: Request) -> Reply:
        query_id = request.params.get("query_id") or str(uuid.uuid4())
        try:
            self._authenticate(request)
            held = self._session(request.params.get("session_id"))
            if held is None:
                return self._run(request, None, query_id)
            if not held.lock.acquire(blocking=False):
                raise ClickHouseError(
                    373,
                    "SESSION_IS_LOCKED",
                    f"Session {request.params['session_id']} is locked by a concurrent client",
                )
            try:
                return self._run(request, held, query_id)
            finally:
                held.lock.release()
        except ClickHouseError as exc:
            return self._error(exc.code, str(exc), query_id)
        except RuntimeError as exc:  # chDB's own refusal, already in ClickHouse's words
            message = str(exc).strip()
            found = _CODE.match(message)
            return self._error(int(found.group(1)) if found else 1001, message, query_id)

    def _authenticate(self, request: Request) -> None:
        user, password = request.params.get("user"), request.params.get("password")
        authorization = request.headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:], validate=True).decode()
            except ValueError:
                decoded = ""
            user, _, password = decoded.partition(":")
        if "x-clickhouse-user" in request.headers:
            user = request.headers["x-clickhouse-user"]
            password = request.headers.get("x-clickhouse-key", "")
        user = user or "default"
        if self.users.get(user) != (password or ""):
            raise ClickHouseError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user "
                "with such name",
            )

    def _session(self, session_id: str | None) -> _Session | None:
        if not session_id:
            return None
        with self._sessions_lock:
            return self._sessions.setdefault(session_id, _Session())

    def _run(self, request: Request, held: _Session | None, query_id: str) -> Reply:
        text = _request_text(request)
        database = (
            request.params.get("database")
            or request.headers.get("x-clickhouse-database")
            or (held.database if held else None)
        )
        default_format = (
            request.params.get("default_format")
            or request.headers.get("x-clickhouse-format")
            or _TEXT_FORMAT
        )
        settings = {k: v for k, v in request.params.items() if k not in _NOT_SETTINGS}
        if request.method == "GET":
            settings.setdefault("readonly", "2")  # ClickHouse runs a GET as read-only
        bound = {k[6:]: v for k, v in request.params.items() if k.startswith("param_")}
        for name in bound:
            settings.pop(f"param_{name}")
        connection = self._open(self.path)
        try:
            if database:
                connection.query(f"USE {_identifier(database)}")
            for statement in held.statements if held else ():
                connection.query(statement)
            # readonly last: once it is set, no setting may change
            for name, value in sorted(settings.items(), key=lambda item: item[0] == "readonly"):
                connection.query(f"SET {_identifier(name)} = {_literal(value)}")
            insert = _INSERT_DATA.match(text)
            if insert and text[insert.end() :].strip():
                statement = text[: insert.start(1)].decode().rstrip()
                statement = re.sub(r"\s+FORMAT\s*\Z", "", statement, flags=re.I)
                result = _insert_data(
                    connection, statement, insert.group(1).decode(), text[insert.end() :]
                )
                summary = _summary(0, 0, *_written(result), 0, 0)
                return self._reply(200, b"", query_id, default_format, summary, request)
            sql = text.decode()
            result = connection.query(sql, default_format, params=bound or None)
            payload = result.bytes()
            if held is not None:
                self._remember(held, sql)
            trailing = _TRAILING_FORMAT.search(sql)
            summary = _summary(
                result.rows_read(),
                result.bytes_read(),
                *_written(result),
                0,
                len(payload),
            )
            fmt = trailing.group(1) if trailing else default_format
            return self._reply(200, payload, query_id, fmt, summary, request)
        finally:
            connection.close()

    @staticmethod
    def _remember(held: _Session, sql: str) -> None:
        first = _FIRST_WORD.match(sql)
        word = first.group(1).upper() if first else ""
        if word == "SET":
            held.statements.append(sql)
        elif word == "USE":
            held.database = sql.split(None, 1)[1].strip().rstrip(";").strip().strip('`"')

    def _reply(
        self,
        status: int,
        body: bytes,
        query_id: str,
        fmt: str,
        summary: str,
        request: Request,
    ) -> Reply:
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.timezone,
            "X-ClickHouse-Summary": summary,
            "X-ClickHouse-Server-Display-Name": "chdb-http-test-fixture",
            "Content-Type": "text/plain; charset=UTF-8",
        }
        encoding = _response_encoding(request)
        if encoding and body:
            body = _COMPRESS[encoding](body)
            headers["Content-Encoding"] = encoding
        return Reply(status, body, headers)

    def _error(self, code: int, message: str, query_id: str) -> Reply:
        text = f"{message.strip() or 'Unknown error'} (version {self.version})"
        return Reply(
            _STATUS.get(code, 500),
            (text + "\n").encode(),
            {
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Exception-Code": str(code),
                "X-ClickHouse-Timezone": self.timezone,
                "Content-Type": "text/plain; charset=UTF-8",
            },
        )


def _request_text(request: Request) -> bytes:
    """The query (and an INSERT's data): the `query` parameter, a newline, then the body."""
    body = request.body
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding and encoding != "identity":
        if encoding not in _DECOMPRESS:
            raise ClickHouseError(
                48, "NOT_IMPLEMENTED", f"Unknown HTTP content encoding {encoding!r}"
            )
        try:
            body = _DECOMPRESS[encoding](body)
        except Exception as exc:
            raise ClickHouseError(
                271, "CANNOT_DECOMPRESS", f"Cannot decompress the {encoding} body: {exc}"
            ) from exc
    query = request.params.get("query", "")
    text = (query.encode() + b"\n" + body) if query else body
    if not text.strip():
        raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")
    return text


def _response_encoding(request: Request) -> str | None:
    if request.params.get("enable_http_compression") not in ("1", "true"):
        return None
    accepted = {
        part.split(";")[0].strip().lower()
        for part in request.headers.get("accept-encoding", "").split(",")
    }
    return next((name for name in _COMPRESS if name in accepted), None)


def _insert_data(connection: Any, statement: str, fmt: str, data: bytes) -> Any:
    """Run `INSERT ... FORMAT fmt` with its data, which the engine reads as a file (FROM INFILE,
    an anonymous in-memory file): every chDB build has that, chdb-core-lite no streaming insert.
    """
    fd = os.memfd_create("clickhouse-http-insert")
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        head, *settings = re.split(r"(?i)\s+SETTINGS\s+", statement, maxsplit=1)
        clauses = [f"{head} FROM INFILE '/proc/self/fd/{fd}'", *settings[:1], f"FORMAT {fmt}"]
        return connection.query(" SETTINGS ".join(clauses[:-1]) + " " + clauses[-1])
    finally:
        os.close(fd)


def _written(result: Any) -> tuple[int, int]:
    """Rows and bytes a statement wrote. chdb-core-lite's results do not say: there the rows and
    bytes it read stand for them (for an INSERT, those of its data; a deduplicated insert then
    counts as written, where ClickHouse says 0)."""
    if hasattr(result, "rows_written"):
        return result.rows_written(), result.bytes_written()
    return result.rows_read(), result.bytes_read()


def _summary(
    read_rows: int,
    read_bytes: int,
    written_rows: int,
    written_bytes: int,
    result_rows: int,
    result_bytes: int,
) -> str:
    """X-ClickHouse-Summary as ClickHouse writes it: every number as a string."""
    return json.dumps(
        {
            "read_rows": str(read_rows),
            "read_bytes": str(read_bytes),
            "written_rows": str(written_rows),
            "written_bytes": str(written_bytes),
            "total_rows_to_read": "0",
            "result_rows": str(result_rows),
            "result_bytes": str(result_bytes),
        }
    )


def _identifier(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _literal(value: str) -> str:
    """A setting's value: a number as itself, anything else as a string literal."""
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _lz4_compress(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.compress(data)


def _lz4_decompress(data: bytes) -> bytes:
    import lz4.frame

    return lz4.frame.decompress(data)


def _zstd_decompress(data: bytes) -> bytes:
    try:  # Python 3.14's module, or its backport, as clickhouse-connect uses
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # type: ignore[import-not-found,no-redef]
    return zstd.decompress(data)


_COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": _lz4_compress,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}
_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": _lz4_decompress,
    "zstd": _zstd_decompress,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


class _Handler(BaseHTTPRequestHandler):
    engine: Engine
    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's pool expects

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def _answer(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self._body()
        if parts.path in ("/ping", "/replicas_status"):
            self._send(Reply(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"}))
            return
        if parts.path != "/":
            self._send(Reply(404, b"There is no handle " + parts.path.encode() + b"\n", {}))
            return
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        headers = {name.lower(): value for name, value in self.headers.items()}
        self._send(self.engine.handle(Request(method, params, headers, body)))

    def _body(self) -> bytes:
        """The request body, sent whole or chunked (clickhouse-connect streams inserts)."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline().strip():  # trailers, then the empty line
            pass
        return b"".join(chunks)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: a test reads its own output


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(path: str, port: int, users: dict[str, str], host: str = "127.0.0.1") -> None:
    """Serve until the process is stopped, printing the URL once it answers."""
    engine = Engine(path, users)
    handler = type("Handler", (_Handler,), {"engine": engine})
    server = _Server((host, port), handler)
    print(f"http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        engine.close()


@dataclass(frozen=True)
class RunningFixture:
    """A fixture process: its base URL (`http://127.0.0.1:PORT`), data folder and users."""

    url: str
    path: Path
    users: dict[str, str]
    process: subprocess.Popen

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log_store_url(self, database: str, user: str | None = None) -> str:
        """A `clickhouse://user:password@127.0.0.1:PORT/database` log store URL."""
        name = user or next(iter(self.users))
        return f"clickhouse://{name}:{self.users[name]}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, user: str | None = None) -> bytes:
        """Run one statement as `user` (the first user by default); the answer's body."""
        name = user or next(iter(self.users))
        response = httpx.post(
            self.url + "/",
            content=sql.encode(),
            headers={"X-ClickHouse-User": name, "X-ClickHouse-Key": self.users[name]},
            timeout=60,
        )
        if response.status_code != 200:
            raise RuntimeError(f"The test fixture refused {sql!r}: {response.text.strip()}")
        return response.content


@contextmanager
def running(path: Path, users: dict[str, str], timeout: float = 60) -> Iterator[RunningFixture]:
    """Start the fixture as a process of its own on `path`; stopped (SIGTERM) on exit."""
    command = [sys.executable, "-m", "tests.support.clickhouse_http", "--path", str(path)]
    for name, password in users.items():
        command += ["--user", f"{name}:{password}"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        ready = threading.Event()
        first: list[str] = []

        def read_url() -> None:
            assert process.stdout is not None
            first.append(process.stdout.readline().strip())
            ready.set()

        threading.Thread(target=read_url, daemon=True).start()
        if not ready.wait(timeout) or not first[0].startswith("http://"):
            process.kill()
            _, err = process.communicate(timeout=30)
            raise RuntimeError(f"The ClickHouse HTTP test fixture did not start: {err.strip()}")
        yield RunningFixture(first[0], path, users, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def parse_user(text: str) -> tuple[str, str]:
    name, sep, password = text.partition(":")
    if not name or not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME:PASSWORD")
    return name, password


def as_parsed(store: Any, statements: Iterable[str]) -> list[str]:
    """Each statement as ClickHouse's own parser reads it (formatQuerySingleLine), through an
    open store: how a test checks DDL the fixture cannot run, such as ON CLUSTER."""
    return [
        store.query("SELECT formatQuerySingleLine({q:String})", params={"q": sql}).rows[0][0]
        for sql in statements
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.clickhouse_http",
        description="A test fixture that answers ClickHouse's HTTP interface with chDB.",
    )
    parser.add_argument("--path", required=True, help="the chDB data folder")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--user",
        action="append",
        type=parse_user,
        default=[],
        help="NAME:PASSWORD, repeatable (default: the user default, no password)",
    )
    args = parser.parse_args(argv)
    try:
        serve(args.path, args.port, dict(args.user) or {"default": ""}, args.host)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"The fixture could not listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
