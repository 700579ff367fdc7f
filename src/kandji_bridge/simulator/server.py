"""Serving the simulator over real HTTP: in a background thread (tests, demo) or blocking (CLI)."""

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from kandji_bridge.simulator.app import create_app
from kandji_bridge.simulator.config import PERMISSION_KEYS, SimulatorConfig
from kandji_bridge.simulator.state import SimulatorState
from kandji_bridge.simulator.stats import RequestStats
from kandji_bridge.simulator.tenant import Device, Tenant

_STARTUP_TIMEOUT_SECONDS = 30


@dataclass
class RunningSimulator:
    base_url: str  # "http://127.0.0.1:PORT"
    host_port: str  # "127.0.0.1:PORT", for KANDJI_BRIDGE_ALLOWED_HOSTS
    state: SimulatorState

    @property
    def tokens(self) -> dict[str, frozenset[str]]:
        return self.state.tokens

    @property
    def token(self) -> str:
        """A token with every permission if there is one, else the first."""
        for value, permissions in self.tokens.items():
            if permissions >= PERMISSION_KEYS:
                return value
        return next(iter(self.tokens))

    @property
    def tenant(self) -> Tenant:
        return self.state.tenant

    @property
    def devices(self) -> list[Device]:
        return self.state.tenant.devices

    @property
    def stats(self) -> RequestStats:
        return self.state.stats

    def events(self) -> list[dict[str, Any]]:
        """Every audit event now in the tenant, in (occurred_at, id) order."""
        return self.state.all_events()


class _QuietDroppedResponses(logging.Filter):
    """A "dropped connection" fault is deliberate; uvicorn would log each one as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("ASGI callable returned without completing response")


_QUIET = _QuietDroppedResponses()  # one instance: adding it again is a no-op


def _server(state: SimulatorState) -> uvicorn.Server:
    logging.getLogger("uvicorn.error").addFilter(_QUIET)
    app = create_app(state.config, state)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    return uvicorn.Server(config)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # With proto 0, asyncio would not set TCP_NODELAY on accepted connections, and small responses
    # (headers and body in two writes) would wait ~40 ms on the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _host_port(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@contextmanager
def running_simulator(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSimulator]:
    """Serve a simulated tenant on a real port (0: a free one) until the block ends."""
    state = SimulatorState(config)
    server = _server(state)
    sock = _bind(host, port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The Kandji simulator did not start on {host}:{port}.")
            time.sleep(0.01)
        host_port = _host_port(host, sock)
        yield RunningSimulator(f"http://{host_port}", host_port, state)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def announcement(state: SimulatorState, host_port: str) -> list[str]:
    """What `simulate` prints on start; scripts read the `base URL:` and `token: VALUE` lines."""
    config, tenant = state.config, state.tenant
    lines = [
        f"Simulated Kandji tenant {tenant.company!r}: {len(tenant.devices)} devices, "
        f"{len(state.events)} audit events over {config.history_days} days (seed {config.seed}).",
        f"base URL: http://{host_port}",
    ]
    for value, permissions in state.tokens.items():
        lines.append(f"token: {value}")
        lines.append(f"  permissions: {', '.join(sorted(permissions)) or 'none'}")
    if config.events_per_minute > 0:
        lines.append(f"live mode: {config.events_per_minute:g} new audit events per minute")
    if config.fault_rate > 0:
        lines.append(f"fault injection: {config.fault_rate:.0%} of API requests fail")
    lines.append(
        f"limits: {config.rate_per_second:g} requests/s, {config.rate_per_hour:g} requests/hour"
    )
    lines.append(f"To let kandji-bridge use it: export KANDJI_BRIDGE_ALLOWED_HOSTS={host_port}")
    return lines


def serve(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 8089,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until interrupted (the `simulate` command), after announcing the URL and tokens.
    The default announce flushes each line: a script reading a pipe must see them at once."""
    announce = announce or (lambda line: print(line, flush=True))
    state = SimulatorState(config)
    server = _server(state)
    sock = _bind(host, port)
    for line in announcement(state, _host_port(host, sock)):
        announce(line)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
