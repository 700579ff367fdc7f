"""`demo`: everything in one command, against a simulated tenant, so a new user sees it work."""

import asyncio
import contextlib
import dataclasses
import threading

from rich.markup import escape

from kandji_bridge import sources
from kandji_bridge.cli_common import out
from kandji_bridge.config import Settings
from kandji_bridge.db import open_state
from kandji_bridge.errors import NotFound
from kandji_bridge.kandji.simulator.config import SimulatorConfig
from kandji_bridge.kandji.simulator.server import running_simulator
from kandji_bridge.verify import verify

SOURCE_NAME = "demo"


def run_demo(
    settings: Settings,
    *,
    devices: int,
    events: int,
    port: int,
    stop: threading.Event | None = None,
) -> None:
    """Serve a simulated tenant, register it as source `demo` and verify it, until stopped."""
    config = SimulatorConfig(devices=devices, events=events, history_days=365, seed=1)
    with running_simulator(config, port=port) as simulator:
        # The simulator speaks plain http on loopback, which only listed hosts may.
        settings = dataclasses.replace(
            settings, allowed_hosts=settings.allowed_hosts | {simulator.host_port}
        )
        out.print(
            f"Simulated Kandji tenant at {simulator.base_url}: {len(simulator.devices)} devices, "
            f"{len(simulator.events())} audit events over the last year."
        )
        report = asyncio.run(verify(simulator.base_url, simulator.token, settings.allowed_hosts))
        for check in report.checks:
            out.print(f"  {'ok  ' if check.ok else 'FAIL'}  {escape(check.name)}")
        with open_state(settings) as state:
            with contextlib.suppress(NotFound):
                sources.remove_source(state, SOURCE_NAME)
            sources.add_source(state, SOURCE_NAME, simulator.base_url, simulator.token)
        out.print(
            f"Registered it as source [bold]{SOURCE_NAME}[/bold] in {escape(str(settings.home))}."
        )
        out.print("Try it from another shell while this runs:")
        out.print(f"  export KANDJI_BRIDGE_ALLOWED_HOSTS={simulator.host_port}")
        out.print(f"  kandji-bridge verify {SOURCE_NAME}")
        out.print("  kandji-bridge source list")
        out.print("demo ready; press Ctrl-C to stop.")
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            out.print("Stopped.")
