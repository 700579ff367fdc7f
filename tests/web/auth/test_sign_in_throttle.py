"""The sign-in throttle against a real `serve` on a real port: parallel guesses are counted
before their passwords are checked, and a client cannot change its address with
X-Forwarded-For unless it is a proxy the admin listed."""

import dataclasses
import queue
import re
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from kandji_bridge import users
from kandji_bridge.config import load_settings
from kandji_bridge.db import open_state
from kandji_bridge.service.serve import run_serve
from kandji_bridge.web.auth import sessions, throttle

from ..conftest import ADMIN, PASSWORD

CLI = (sys.executable, "-m", "kandji_bridge")
SERVING = re.compile(r"Serving on (http://\S+)")


@contextmanager
def serving(forwarded_allow_ips: tuple[str, ...] = ()) -> Iterator[str]:
    """`serve` (web app and scheduler) on a free port of this process; yields its URL."""
    settings = dataclasses.replace(load_settings(), forwarded_allow_ips=forwarded_allow_ips)
    with open_state(settings) as state:
        users.create_user(state, ADMIN, PASSWORD)
    stop, ready = threading.Event(), queue.Queue()
    thread = threading.Thread(
        target=run_serve,
        args=(settings, "127.0.0.1", 0),
        kwargs={"stop": stop, "on_ready": ready.put},
    )
    thread.start()
    try:
        yield ready.get(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=60)


class SignInForm:
    """The sign-in form as a browser holds it: its double-submit cookie and token."""

    def __init__(self, url: str) -> None:
        self.url = url
        form = httpx.get(f"{url}/login")
        self.cookie = form.cookies[sessions.LOGIN_CSRF_COOKIE]
        self.csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]

    def post(self, username: str, password: str, forwarded_for: str = "") -> int:
        headers = {"Cookie": f"{sessions.LOGIN_CSRF_COOKIE}={self.cookie}"}
        if forwarded_for:
            headers["X-Forwarded-For"] = forwarded_for
        data = {"username": username, "password": password, "csrf_token": self.csrf}
        response = httpx.post(f"{self.url}/login", data=data, headers=headers, timeout=120)
        return response.status_code


@pytest.fixture
def password_checks(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """How many argon2 password checks sign-in makes (the real check, counted)."""
    checks: Counter = Counter()
    lock = threading.Lock()
    verify = users._verify

    def counted(password_hash: str, password: str) -> bool:
        with lock:
            checks["argon2"] += 1
        return verify(password_hash, password)

    monkeypatch.setattr(users, "_verify", counted)
    return checks


def test_sixty_parallel_wrong_passwords_get_only_the_limit_of_checks(
    home: Path, password_checks: Counter
) -> None:
    with serving() as url:
        form = SignInForm(url)
        start = threading.Barrier(60)

        def guess(number: int) -> int:
            start.wait()
            return form.post(ADMIN, f"guess number {number}")

        with ThreadPoolExecutor(60) as pool:
            codes = Counter(pool.map(guess, range(60)))
        assert codes == {401: throttle.LOGIN_FAILURES_PER_USERNAME, 429: 55}
        assert password_checks["argon2"] == throttle.LOGIN_FAILURES_PER_USERNAME
        assert form.post(ADMIN, PASSWORD) == 429, "the right password is throttled too"


def test_the_username_is_throttled_however_it_is_spelt(
    home: Path, password_checks: Counter
) -> None:
    # Each spelling (spaces, full-width letters) names the same account, so each counts for it.
    spellings = [
        ADMIN,
        f" {ADMIN}",
        f"{ADMIN}\t",
        "\uff41\uff44\uff4d\uff49\uff4e",
        " \uff41dmin ",
        f"\n{ADMIN}",
    ]
    with serving() as url:
        form = SignInForm(url)
        codes = [form.post(name, "wrong password") for name in spellings]
    assert codes == [401] * 5 + [429]
    assert password_checks["argon2"] == 5


def test_rotating_x_forwarded_for_does_not_escape_the_throttle(home: Path) -> None:
    # No proxy is listed: the socket's peer is the client, whatever the header says.
    with serving() as url:
        form = SignInForm(url)
        codes = [
            form.post(f"user{n}", "wrong password", forwarded_for=f"203.0.113.{n}")
            for n in range(throttle.LOGIN_FAILURES_PER_ADDRESS + 2)
        ]
    assert codes == [401] * throttle.LOGIN_FAILURES_PER_ADDRESS + [429, 429]


def test_a_listed_proxy_s_x_forwarded_for_is_the_client(home: Path) -> None:
    """`serve --forwarded-allow-ips`, as users run it: each forwarded address is a client of
    its own; the proxy's own requests (no header) are still one client."""
    with open_state(load_settings()) as state:
        users.create_user(state, ADMIN, PASSWORD)
    process = subprocess.Popen(
        [*CLI, "serve", "--port", "0", "--forwarded-allow-ips", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        match = None
        for line in process.stdout:
            if match := SERVING.search(line):
                break
        assert match, process.stderr.read()
        form = SignInForm(match[1])
        limit = throttle.LOGIN_FAILURES_PER_ADDRESS
        forwarded = [
            form.post(f"user{n}", "wrong password", forwarded_for=f"203.0.113.{n}")
            for n in range(limit + 2)
        ]
        assert forwarded == [401] * (limit + 2)
        direct = [form.post(f"user{n}", "wrong password") for n in range(limit + 1)]
        assert direct == [401] * limit + [429]
    finally:
        process.kill()
        process.wait(timeout=30)


def test_the_throttle_forgets_addresses_whose_failures_expired(home: Path) -> None:
    now = [datetime(2026, 12, 6, 9, 0, tzinfo=UTC)]
    with open_state(load_settings()) as state:
        counted = throttle.LoginThrottle(state, clock=lambda: now[0])
        for n in range(200):
            counted.begin(f"198.51.100.{n % 50}", f"user{n}")
        assert len(counted) == 250  # 50 addresses, 200 address+username pairs
        now[0] += timedelta(seconds=throttle.LOGIN_WINDOW_SECONDS)
        counted.begin("192.0.2.1", ADMIN)
        assert len(counted) == 2, "keys with no failure left in the window were kept"
        counted.succeeded(counted.begin("192.0.2.2", ADMIN))
        assert len(counted) == 2, "a successful sign-in left its failures behind"
