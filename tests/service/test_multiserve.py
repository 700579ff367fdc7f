"""Several `serve` processes: an embedded store has one owner, and a second serve on it is
refused with who owns it; serves on one PostgreSQL state DB answer for each other."""

import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from kandji_bridge import users
from kandji_bridge.db import StateDB
from kandji_bridge.service.advert import ADVERT_FILE
from kandji_bridge.web.auth import sessions, throttle

from .test_serve import CLI, serve_process

ADMIN, PASSWORD = "admin", "correct horse battery staple"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_a_second_serve_on_an_embedded_store_says_who_owns_it_and_changes_nothing(
    home: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "KANDJI_BRIDGE_HOME": str(home)}
    with serve_process(env, tmp_path / "first.log") as (first, url):
        advert = (home / ADVERT_FILE).read_bytes()
        started = json.loads(advert)["started_at"]
        second = subprocess.run(
            [*CLI, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=120
        )
        # A serve of another home pointed at the same folder: the kernel's lock names the owner.
        other_home = tmp_path / "other-home"
        elsewhere = subprocess.run(
            [*CLI, "serve", "--port", "0"],
            env={
                **env,
                "KANDJI_BRIDGE_HOME": str(other_home),
                "KANDJI_BRIDGE_LOG_STORE": f"chdb://{home / 'logs'}",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (home / ADVERT_FILE).read_bytes() == advert, "the second serve replaced the advert"
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert first.poll() is None
    for refused in (second, elsewhere):
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "Serving on" not in refused.stdout
    host = socket.gethostname()
    # The owner as serve.json has it: pid, host, since when, URL; then what to do instead.
    assert second.stderr.startswith(
        f"Error: The embedded log store {(home / 'logs').resolve()} is owned by the `serve` "
        f"with pid {first.pid} on {host} since {started[:10]} {started[11:19]} UTC, at {url}"
    ), second.stderr
    for words in ("PostgreSQL state DB", "ClickHouse log store", "docs/scale-out.md"):
        assert words in second.stderr
    assert f"pid {first.pid} on {host}" in elsewhere.stderr
    assert not other_home.exists(), "the refused serve made a home"


@contextmanager
def serves_on_one_state_db(
    tmp_path: Path, database_url: str, count: int, **extra: str
) -> Iterator[list[tuple[subprocess.Popen, str]]]:
    """`count` real serves as on `count` machines: a home of their own each, one PostgreSQL
    state DB and one secret key (KANDJI_BRIDGE_SECRET_KEY, as docs/scale-out.md says)."""
    key = Fernet.generate_key().decode()
    with ExitStack() as stack:
        started = []
        for number in range(count):
            home = tmp_path / f"serve-{number}"
            env = {
                **os.environ,
                "KANDJI_BRIDGE_HOME": str(home),
                "KANDJI_BRIDGE_DATABASE_URL": database_url,
                "KANDJI_BRIDGE_SECRET_KEY": key,
                **extra,
            }
            started.append(stack.enter_context(serve_process(env, tmp_path / f"{number}.log")))
        yield started


def sign_in_form(url: str) -> tuple[str, str]:
    """The sign-in form's double-submit cookie and token, as a browser got them from `url`."""
    form = httpx.get(f"{url}/login")
    return form.cookies[sessions.LOGIN_CSRF_COOKIE], CSRF_FIELD.search(form.text)[1]


def sign_in_on(url: str, form: tuple[str, str], password: str) -> httpx.Response:
    cookie, csrf = form
    return httpx.post(
        f"{url}/login",
        data={"username": ADMIN, "password": password, "csrf_token": csrf},
        headers={"Cookie": f"{sessions.LOGIN_CSRF_COOKIE}={cookie}"},
    )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_any_serve_answers_the_ui_and_api_of_a_session_made_on_another(
    home: Path, tmp_path: Path, state: StateDB, database_url: str
) -> None:
    users.create_user(state, ADMIN, PASSWORD)
    with serves_on_one_state_db(tmp_path, database_url, 2) as [(_, a), (_, b)]:
        # The sign-in form served by A, posted to B; the session made by B, used on A.
        signed_in = sign_in_on(b, sign_in_form(a), PASSWORD)
        assert signed_in.status_code == 303, signed_in.text
        cookie = {sessions.SESSION_COOKIE: signed_in.cookies[sessions.SESSION_COOKIE]}
        account = httpx.get(f"{a}/account", cookies=cookie)
        assert account.status_code == 200
        csrf = CSRF_FIELD.search(account.text)[1]
        # A form of A's page, with A's CSRF token, posted to B: B makes the API token.
        made = httpx.post(
            f"{b}/account/tokens",
            data={"name": "script", "scope": users.ADMIN, "csrf_token": csrf},
            cookies=cookie,
        )
        assert made.status_code == 200, made.text
        token = re.search(r"kbt_[\w-]+", made.text)[0]
        for url in (a, b):
            me = httpx.get(f"{url}/api/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["username"] == ADMIN
        # A forged token is refused by the serve that did not make the session either.
        forged = httpx.post(
            f"{a}/account/tokens", data={"name": "x", "csrf_token": "forged"}, cookies=cookie
        )
        assert forged.status_code == 403
        # Signed out on A: the session is gone on B too.
        out = httpx.post(f"{a}/logout", data={"csrf_token": csrf}, cookies=cookie)
        assert out.status_code == 303
        assert httpx.get(f"{b}/api/me", cookies=cookie).status_code == 401

        # Wrong passwords spread over both serves count together.
        form = sign_in_form(a)
        limit = throttle.LOGIN_FAILURES_PER_USERNAME
        codes = [sign_in_on((a, b)[n % 2], form, f"guess {n}").status_code for n in range(limit)]
        assert codes == [401] * limit
        for url in (a, b):
            refused = sign_in_on(url, form, PASSWORD)
            assert refused.status_code == 429 and "Too many failed sign-ins" in refused.text
