"""Shared fixtures: an isolated home, and a simulated Kandji tenant over real HTTP."""

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hostile.kandji import HostileKandji, running
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import RunningSimulator, running_simulator
from support import clickhouse_http

# CI sets this so a test that needs a service (PostgreSQL, Chromium) fails instead of skipping.
REQUIRE_SERVICES = os.environ.get("KANDJI_BRIDGE_TEST_REQUIRE_SERVICES") == "1"
# Test settings the home fixture keeps: the crash harness's seed, to replay a run.
KEPT = frozenset({"KANDJI_BRIDGE_CRASH_SEED"})


def skip_or_fail(reason: str) -> None:
    """Skip on a developer machine without the service; fail in CI, where it must be there."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (KANDJI_BRIDGE_TEST_REQUIRE_SERVICES=1, so this must run)")
    pytest.skip(reason)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh kandji-bridge home; the KANDJI_BRIDGE_* environment is cleared around the test."""
    for name in list(os.environ):
        if (
            name.startswith("KANDJI_BRIDGE_")
            and name not in KEPT
            and not name.startswith("KANDJI_BRIDGE_TEST_")
        ):
            monkeypatch.delenv(name)
    path = tmp_path / "home"
    monkeypatch.setenv("KANDJI_BRIDGE_HOME", str(path))
    return path


@pytest.fixture
def simulator_factory() -> Iterator[Callable[..., RunningSimulator]]:
    """Start simulators with any SimulatorConfig fields; each is stopped after the test."""
    stack: list = []

    def start(**fields: object) -> RunningSimulator:
        manager = running_simulator(SimulatorConfig(**fields))  # type: ignore[arg-type]
        stack.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@pytest.fixture
def simulator(simulator_factory: Callable[..., RunningSimulator]) -> RunningSimulator:
    """A small seeded tenant: 40 devices, 1,200 audit events over 30 days, one full token."""
    return simulator_factory(devices=40, events=1200, history_days=30, seed=7)


@pytest.fixture
def allow_simulator(
    simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> RunningSimulator:
    """The simulator, with its http://127.0.0.1:PORT allowed as a Kandji API URL."""
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", simulator.host_port)
    return simulator


@pytest.fixture
def hostile_kandji() -> Iterator[HostileKandji]:
    """A Kandji server that behaves until the test switches a misbehaviour on (hostile.kandji)."""
    with running() as server:
        yield server


@pytest.fixture
def allow_hostile_kandji(
    home: Path, hostile_kandji: HostileKandji, monkeypatch: pytest.MonkeyPatch
) -> HostileKandji:
    """The hostile server, with its http://127.0.0.1:PORT allowed as a Kandji API URL."""
    monkeypatch.setenv("KANDJI_BRIDGE_ALLOWED_HOSTS", hostile_kandji.host_port)
    return hostile_kandji


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MB tmpfs of its own, unmounted after the test."""
    if os.geteuid() != 0:
        skip_or_fail("mounting a small tmpfs to fill needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        skip_or_fail(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="session")
def clickhouse_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[clickhouse_http.RunningFixture]:
    """The ClickHouse HTTP test fixture (tests/support/clickhouse_http.py: chDB behind
    ClickHouse's HTTP interface, not a ClickHouse server) as a process of its own, one for the
    session; it knows the users `kb` (password `kb-test-password`) and `kb_reader`
    (`kb-reader-password`)."""
    path = tmp_path_factory.mktemp("clickhouse-http") / "data"
    users = {"kb": "kb-test-password", "kb_reader": "kb-reader-password"}
    with clickhouse_http.running(path, users) as running_fixture:
        yield running_fixture


@pytest.fixture
def clickhouse_url(clickhouse_fixture: clickhouse_http.RunningFixture) -> Iterator[str]:
    """A `clickhouse://kb:...@127.0.0.1:PORT/DATABASE` log store URL on the test fixture, with a
    database of the test's own (dropped after it)."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    clickhouse_fixture.execute(f"CREATE DATABASE {database}")
    yield clickhouse_fixture.log_store_url(database)
    clickhouse_fixture.execute(f"DROP DATABASE IF EXISTS {database} SYNC")


@pytest.fixture(params=["embedded", "server"])
def log_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty log store's URL, once per engine: the embedded chDB store in the test's folder,
    and a ClickHouse server (the HTTP test fixture above, a database of the test's own)."""
    if request.param == "embedded":
        return f"chdb://{tmp_path / 'logs'}"
    return request.getfixturevalue("clickhouse_url")
