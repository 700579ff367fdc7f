"""The client over real sockets: DNS, TLS and connection failures as the OS reports them, bodies
cut short on the wire, and the token in no log line (httpx's and httpcore's own included)."""

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kandji_bridge.kandji.client import KandjiClient
from kandji_bridge.kandji.errors import (
    AuthenticationError,
    ConnectError,
    DNSError,
    KandjiError,
    MalformedResponseError,
    PermissionDeniedError,
    RedirectError,
    ServerError,
    TLSError,
)
from kandji_bridge.kandji.ratelimit import RateLimiter
from kandji_bridge.kandji.urls import ApiUrl
from kandji_bridge.operations.verify import verify

TOKEN = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"

# A request head -> the bytes to send and whether to close the connection after them, or None to
# close it without answering.
Respond = Callable[[bytes], tuple[bytes, bool] | None]


def _http(status: str, body: bytes = b"", headers: str = "") -> tuple[bytes, bool]:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    )
    return head.encode() + body, False


@asynccontextmanager
async def raw_server(
    respond: Respond, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An HTTP/1.1 server on 127.0.0.1 answering each request head with respond(head).

    Yields its host:port and the request heads it saw.
    """
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                seen.append(head)
                answer = respond(head)
                if answer is None:
                    break
                writer.write(answer[0])
                await writer.drain()
                if answer[1]:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"127.0.0.1:{port}", seen


def _client(base_url: str, **options: object) -> KandjiClient:
    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    limiter = RateLimiter(1000, 1_000_000)
    return KandjiClient(
        ApiUrl(base_url), TOKEN, limiter=limiter, sleep=no_wait, timeout=5, **options
    )


async def _first_audit_page(client: KandjiClient) -> None:
    async for _ in client.iter_audit_pages(limit=1):
        break


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


async def test_an_untrusted_certificate_is_a_tls_error(tmp_path: Path) -> None:
    async with (
        raw_server(lambda head: _http("200 OK", b"{}"), tls=_self_signed(tmp_path)) as (
            host_port,
            seen,
        ),
        _client(f"https://{host_port}") as client,
    ):
        with pytest.raises(TLSError) as caught:
            await _first_audit_page(client)
    assert seen == []  # the token never left: the handshake failed before any request
    assert f"The secure (TLS) connection to {host_port} failed (certificate not trusted" in str(
        caught.value
    )


async def test_a_host_that_does_not_exist_is_a_dns_error() -> None:
    # .invalid never resolves (RFC 6761), whatever the network.
    async with _client("https://no-such-tenant.invalid") as client:
        with pytest.raises(DNSError) as caught:
            await _first_audit_page(client)
    assert "The host no-such-tenant.invalid could not be found" in str(caught.value)


async def test_a_closed_port_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with _client(f"http://127.0.0.1:{port}", max_tries=2) as client:
        with pytest.raises(ConnectError) as caught:
            await _first_audit_page(client)
    assert f"Cannot reach 127.0.0.1:{port} (connection refused, 2 tries)" in str(caught.value)


async def test_bodies_cut_short_and_dropped_connections_are_retried() -> None:
    page = json.dumps({"next": None, "results": [{"id": "01A", "metadata": {}}]}).encode()
    full = _http("200 OK", page)[0]
    answers: list[tuple[bytes, bool] | None] = [
        (full[:-5], True),  # Content-Length promises more than arrives, then the line drops
        None,  # the connection drops before any answer
        _http("200 OK", page[:-5]),  # a complete response carrying cut JSON
        (full, False),
    ]
    async with (
        raw_server(lambda head: answers.pop(0)) as (host_port, seen),
        _client(f"http://{host_port}") as client,
    ):
        pages = [p async for p in client.iter_audit_pages()]
    assert pages[0].events[0].raw == '{"id": "01A", "metadata": {}}'
    assert len(seen) == 4
    assert client.stats.retries == 3


async def test_the_token_is_in_no_log_line_error_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore log requests and headers at DEBUG
    statuses = iter(
        [
            _http("200 OK", json.dumps({"next": None, "results": [{"id": "01A"}]}).encode()),
            _http("429 Too Many Requests", b'{"detail":"x"}', "Retry-After: 0\r\n"),
            _http("200 OK", b"[]"),
            _http("401 Unauthorized", b'{"detail":"Invalid token."}'),
            _http("403 Forbidden", b'{"detail":"No."}'),
            _http("503 Service Unavailable", b"down"),
            _http("503 Service Unavailable", b"down"),
            _http("200 OK", b'{"results": [{"id"'),
            _http("200 OK", b'{"results": [{"id"'),
        ]
    )
    errors: list[KandjiError] = []
    async with (
        raw_server(lambda head: next(statuses)) as (host_port, seen),
        _client(f"http://{host_port}", max_tries=2) as client,
    ):
        await _first_audit_page(client)
        assert [p async for p in client.iter_device_pages()] == [[]]
        for expected in (
            AuthenticationError,
            PermissionDeniedError,
            ServerError,
            MalformedResponseError,
        ):
            with pytest.raises(expected) as caught:
                await _first_audit_page(client)
            errors.append(caught.value)
    assert all(f"Bearer {TOKEN}".encode() in head for head in seen)  # it was sent
    assert caplog.records, "httpx logged nothing: the check below would prove nothing"
    assert any(record.name.startswith("httpcore") for record in caplog.records)
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(record.__dict__)
    assert TOKEN not in caplog.text
    for error in errors:
        assert TOKEN not in str(error)
        assert TOKEN not in repr(error)
        assert TOKEN not in repr(error.__cause__)
    assert TOKEN not in repr(client)
    assert TOKEN not in repr(client.stats)


def _redirect_to(location: str) -> Respond:
    return lambda head: _http("302 Found", b"", f"Location: {location}\r\n")


async def test_a_redirect_to_another_local_server_is_never_followed_even_an_allowed_one() -> None:
    # Over real sockets: a Kandji URL that answers 302 to another server on this machine (a
    # stand-in for 127.0.0.1 services and 169.254.169.254, whose respx twin is in
    # test_kandji_client.py). The second server must never see a request, whatever the call.
    async with (
        raw_server(lambda head: _http("200 OK", b"[]")) as (target, target_seen),
        raw_server(_redirect_to(f"http://{target}/api/v1/audit/events")) as (bouncer, _),
    ):
        for call in (
            _first_audit_page,
            lambda client: client.iter_device_pages().__anext__(),
            lambda client: client.get_device_details("d1"),
        ):
            async with _client(f"http://{bouncer}") as client:
                with pytest.raises(RedirectError) as caught:
                    await call(client)
            assert f"redirect (302) to {target.split(':')[0]}" in str(caught.value)
        # Through `verify`, with both hosts allowed: still refused, still not followed.
        report = await verify(f"http://{bouncer}", TOKEN, frozenset({bouncer, target}))
    assert target_seen == []
    assert not report.ok
    assert any("never follows" in check.detail for check in report.checks)
    assert TOKEN not in repr(report)
