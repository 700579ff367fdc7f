"""The token appears nowhere, even when Kandji (or a proxy in between) echoes it back.

A hostile server repeats the request's `Authorization` in JSON error details, HTML error pages,
headers (WWW-Authenticate, Location) and encoded forms, on the audit, device list and device
details endpoints. Whatever the command (`verify`, `logs sync --debug`, `inventory sync --debug`,
`inventory runs`, a real `serve` and its API and pages), the token is in none of its output,
logs, answers or files.
"""

import base64
import html
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from hostile.kandji import (
    Behaviour,
    HostileKandji,
    devices,
    echo_token,
    echo_token_encoded,
    echo_token_header,
    echo_token_redirect,
    events_over,
    kandji_bridge,
)
from hostile.tenant import MAPPING, add_tenant, serving, wait_for
from kandji_bridge import redact

ECHOES: dict[str, Behaviour] = {
    "JSON detail, 400": echo_token(400),
    "JSON detail, 500": echo_token(500),
    "HTML page, 403": echo_token(403, html=True),
    "HTML page, 502": echo_token(502, html=True),
    "WWW-Authenticate header, 401": echo_token_header(401),
    "Location header, 302": echo_token_redirect,
    "URL-encoded and in a Basic credential, 400": echo_token_encoded(400),
}
echoes = pytest.mark.parametrize("echo", list(ECHOES.values()), ids=list(ECHOES))


def token_forms(token: str) -> list[str]:
    """The token as a server might echo it: plain, URL-encoded, base64, in a Basic credential."""
    return [
        token,
        quote(token, safe=""),
        base64.b64encode(token.encode()).decode(),
        base64.b64encode(f"api:{token}".encode()).decode(),
    ]


def assert_no_token(text: str, token: str) -> None:
    for form in token_forms(token):
        assert form not in text, f"the token ({form}) is in: {text}"


def files_under(folder: Path) -> Iterator[Path]:
    return (path for path in folder.rglob("*") if path.is_file())


def assert_no_token_in_files(folder: Path, token: str) -> None:
    forms = [form.encode() for form in token_forms(token)]
    for path in files_under(folder):
        content = path.read_bytes()
        for form in forms:
            assert form not in content, f"the token ({form!r}) is in {path}"


@pytest.fixture
def tenant(allow_hostile_kandji: HostileKandji) -> HostileKandji:
    """Source `acme` and a mapping reading device details, added while the server behaved."""
    server = allow_hostile_kandji
    server.events = events_over(5, datetime.now(UTC) - timedelta(hours=1))
    server.devices = devices(5)
    add_tenant(server, details=True)
    return server


@echoes
def test_verify_never_shows_an_echoed_token(
    allow_hostile_kandji: HostileKandji, echo: Behaviour
) -> None:
    server = allow_hostile_kandji
    server.audit = server.device_list = server.device_details = echo
    for debug in ((), ("--debug",)):
        done = kandji_bridge(
            *debug, "verify", "--url", server.url, "--token-env", "HOSTILE_TOKEN",
            env={"HOSTILE_TOKEN": server.token},
        )  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        assert_no_token(done.stdout + done.stderr, server.token)


@echoes
def test_logs_sync_with_debug_never_shows_an_echoed_token(
    tenant: HostileKandji, echo: Behaviour, home: Path
) -> None:
    tenant.audit = echo
    done = kandji_bridge("--debug", "logs", "sync", "acme")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Kandji" in done.stderr  # the failure is told, only without the token
    assert_no_token(done.stdout + done.stderr, tenant.token)
    assert_no_token_in_files(home, tenant.token)


# Each echo on both device endpoints, but for the two (JSON 500, HTML 403) that add nothing
# there: their errors quote no server text, and the audit endpoint already checks them.
INVENTORY_ECHOES = {
    name: echo
    for name, echo in ECHOES.items()
    if name not in ("JSON detail, 500", "HTML page, 403")
}


@pytest.mark.parametrize("endpoint", ["device_list", "device_details"])
@pytest.mark.parametrize("echo", list(INVENTORY_ECHOES.values()), ids=list(INVENTORY_ECHOES))
def test_inventory_sync_and_its_runs_never_show_an_echoed_token(
    tenant: HostileKandji, echo: Behaviour, endpoint: str, home: Path
) -> None:
    setattr(tenant, endpoint, echo)
    done = kandji_bridge("--debug", "inventory", "sync", MAPPING)
    assert done.returncode == 1, done.stdout + done.stderr
    assert_no_token(done.stdout + done.stderr, tenant.token)
    runs = kandji_bridge("inventory", "runs", MAPPING)
    assert runs.returncode == 0, runs.stderr
    assert "failed" in runs.stdout
    assert_no_token(runs.stdout + runs.stderr, tenant.token)
    assert_no_token_in_files(home, tenant.token)


def test_serve_never_shows_an_echoed_token_in_its_api_pages_logs_or_files(
    tenant: HostileKandji, home: Path, tmp_path: Path
) -> None:
    tenant.audit = echo_token(400)
    tenant.device_details = echo_token_encoded(400)
    log = tmp_path / "serve.log"
    with serving(log) as (_, api):
        source = wait_for(
            lambda: (answer := api.get("/api/sources/acme").json())["last_error"] and answer,
            "the source's poll to fail",
        )
        runs = wait_for(
            lambda: (
                (answer := api.get(f"/api/mappings/{MAPPING}/runs").json())
                and answer[0]["status"] == "failed"
                and answer
            ),
            "the mapping's sync to fail",
        )
        answers = [
            api.get(path).text
            for path in (
                "/api/sources",
                f"/api/mappings/{MAPPING}",
                f"/api/mappings/{MAPPING}/runs",
                "/sources",
                f"/integrations/mappings/{MAPPING}",
                "/metrics",
            )
        ]
    assert "400" in source["last_error"]
    assert "400" in " ".join(runs[0]["errors"])
    for text in answers:
        assert_no_token(text, tenant.token)
    assert_no_token(log.read_text(), tenant.token)
    assert_no_token_in_files(home, tenant.token)


@pytest.mark.parametrize("user", ["", "a", "ab", "api", "kandji-bridge"])
def test_a_scrubber_masks_the_token_in_every_form_a_server_may_echo(user: str) -> None:
    token = "3f1c9a7e-5b2d/4e8f+9a6b&1c2d"  # characters that each encoding changes
    basic = base64.b64encode(f"{user}:{token}".encode())
    echoed = [
        f"Authorization: Bearer {token}",
        quote(token, safe=""),
        quote_plus(token),
        html.escape(token),
        json.dumps({"detail": token}),
        f"Authorization: Basic {basic.decode()}",
        base64.urlsafe_b64encode(f"{user}:{token}".encode()).decode(),
    ]
    scrub = redact.Scrubber(token)
    for text in echoed:
        scrubbed = scrub(text)
        assert redact.MASK in scrubbed, text
        assert token not in scrubbed
        assert basic.decode() not in scrubbed
