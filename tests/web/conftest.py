"""The web app for real: a runtime on a fresh home (state DB + chDB store), an admin account, an
httpx client signed in through the login form, a uvicorn server on a free port, and headless
Chromium (Debian's, never a download) driven by Playwright."""

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.store import open_log_store
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web.app import create_app

ADMIN = "admin"
PASSWORD = "correct horse battery staple"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
# CI sets this: without Chromium the browser tests fail there instead of skipping.
REQUIRE_SERVICES = os.environ.get("KANDJI_BRIDGE_TEST_REQUIRE_SERVICES") == "1"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "screenshots"


@pytest.fixture
def runtime(home: Path) -> Iterator[Runtime]:
    """What `serve` holds open, on a fresh home, without the scheduler."""
    settings = load_settings(home)
    state = open_state(settings)
    store = open_log_store(settings.log_store)
    store.ensure_schema()
    enricher = build_enricher()
    try:
        yield Runtime(settings, state, store, enricher)
    finally:
        enricher.close()
        store.close()
        state.close()


@pytest.fixture
def admin(runtime: Runtime) -> users.UserInfo:
    return users.create_user(runtime.state, ADMIN, PASSWORD)


def sign_in(client: httpx.Client, username: str = ADMIN, password: str = PASSWORD) -> str:
    """Sign in through the login form as a browser does; returns the session's CSRF token."""
    form = client.get("/login")
    login_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert login_csrf, "the sign-in form has no CSRF token"
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": login_csrf.group(1)},
    )
    assert response.status_code == 303, response.text
    page = client.get("/account")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    return csrf.group(1)


@pytest.fixture
def anonymous(runtime: Runtime) -> Iterator[TestClient]:
    """A client that has not signed in (redirects are not followed)."""
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        yield client


@pytest.fixture
def client(runtime: Runtime, admin: users.UserInfo) -> Iterator[TestClient]:
    """A browser-like client signed in as the admin; `client.csrf` is the session's CSRF token."""
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        client.csrf = sign_in(client)  # type: ignore[attr-defined]
        yield client


@pytest.fixture
def api(runtime: Runtime, admin: users.UserInfo) -> Iterator[TestClient]:
    """A script's client: an API token in the Authorization header, no cookies."""
    token = users.create_api_token(runtime.state, ADMIN, "tests", users.ADMIN)
    with TestClient(
        create_app(runtime), headers={"Authorization": f"Bearer {token}"}, follow_redirects=False
    ) as client:
        yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(runtime: Runtime, admin: users.UserInfo) -> Iterator[str]:
    """The app on a real HTTP port, for the browser; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the web app did not start within 15 s")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


# Per test, not per session: sync Playwright keeps an event loop running in the main thread while
# it is open, and any later test calling asyncio.run() would fail.
@pytest.fixture
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing; install Debian's chromium package"
        pytest.fail(missing) if REQUIRE_SERVICES else pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server: str, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser tab, signed in as the admin through the login page."""
    context = browser.new_context(base_url=live_server, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.goto("/login")
    tab.fill("#f-username", ADMIN)
    tab.fill("#f-password", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(re.compile(r".*/sources.*"))
    yield tab
    with contextlib.suppress(Exception):
        context.close()


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[object, str], Path]:
    """Save a screenshot of the tab as tests/screenshots/<test>/<NN-step>.png."""
    folder = SCREENSHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def take(tab: object, step: str) -> Path:
        name = re.sub(r"[^\w.-]+", "_", step)
        path = folder / f"{next(counter):02d}-{name}.png"
        tab.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path

    return take
