"""A tenant set up on a hostile Kandji through the real CLI: a source, a collection and a
mapping, and an account with an API token for a real `serve`."""

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from hostile.kandji import HostileKandji, add_source, kandji_bridge
from service.test_serve import serve_process

MAPPING = "Kandji Device Import"
PASSWORD = "hostile-admin-pw-1"


def add_mapping(server: HostileKandji, source: str = "acme", details: bool = False) -> None:
    """A collection and a mapping importing `server`'s devices into it (the source exists);
    with `details`, it maps a field read from each device's details too."""
    steps = [
        (
            "collection", "create", "ITAM",
            "--field", "Device ID:text:unique", "--field", "Name:text", "--field", "Model:text",
        ),
        (
            "mapping", "create", "--name", MAPPING, "--source", source, "--entity", "devices",
            "--collection", "ITAM", "--identifier", "device_id=Device ID",
            "--field", "device_name=Name",
            *(("--field", "model_identifier=Model") if details else ()),
        ),
    ]  # fmt: skip
    for step in steps:
        done = kandji_bridge(*step)
        assert done.returncode == 0, done.stdout + done.stderr


def add_tenant(server: HostileKandji, details: bool = False) -> None:
    """Source `acme` and the mapping, set up while `server` still behaves."""
    add_source(server)
    add_mapping(server, details=details)


def api_token() -> str:
    """An account, and an API token for it, made through the CLI."""
    created = subprocess.run(
        [sys.executable, "-m", "kandji_bridge", "user", "create", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    done = kandji_bridge("user", "token", "admin", "--name", "hostile tests")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@contextmanager
def serving(log: Path) -> Iterator[tuple[subprocess.Popen, httpx.Client]]:
    """A real `serve` on this test's home, and an API client signed in with a token."""
    token = api_token()
    with (
        serve_process(dict(os.environ), log) as (process, url),
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api,
    ):
        yield process, api


def wait_for(condition: Callable[[], object], what: str, timeout: float = 90) -> object:
    """The first true value of `condition`; the timeout only keeps a broken test from hanging."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.2)
    return value
