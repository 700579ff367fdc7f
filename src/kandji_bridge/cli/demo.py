"""`demo`: everything in one command, against a simulated tenant, so a new user sees it work."""

import asyncio
import contextlib
import dataclasses
import secrets
import threading
import webbrowser

from rich.markup import escape

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.assets import collections
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.cli.common import out
from kandji_bridge.config import Settings
from kandji_bridge.db import open_state
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import AlreadyExists, NotFound
from kandji_bridge.inventory import mappings
from kandji_bridge.operations.verify import verify
from kandji_bridge.service.serve import run_serve
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.server import running_simulator

SOURCE_NAME = "demo"
DEMO_USER = "demo"
COLLECTION = "Demo devices"
MAPPING = "Kandji Device Import"
FIELDS = [
    ("serial_number", "Serial", "text", True),
    ("device_id", "Device ID", "text", True),
    ("device_name", "Name", "text", False),
    ("model", "Model", "text", False),
    ("os_version", "OS Version", "text", False),
    ("user_email", "User Email", "text", False),
    ("last_check_in", "Last Check In", "datetime", False),
]


def run_demo(
    settings: Settings,
    *,
    devices: int,
    events: int,
    port: int,
    open_browser: bool = True,
    stop: threading.Event | None = None,
) -> None:
    """A simulated tenant, registered as a source and an integration with a device mapping, and
    `serve` on `port`: the scheduler backfills the logs and imports the devices at once."""
    with running_simulator(simulator_config(devices, events), port=0) as simulator:
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
            password = _register(state, simulator.base_url, simulator.token)
        out.print(
            f"Registered it as source [bold]{SOURCE_NAME}[/bold], collection "
            f"[bold]{COLLECTION}[/bold] and mapping [bold]{MAPPING}[/bold] in "
            f"{escape(str(settings.home))}."
        )
        out.print("Try it from another shell while this runs:")
        out.print(f"  export KANDJI_BRIDGE_ALLOWED_HOSTS={simulator.host_port}")
        out.print(f"  kandji-bridge verify {SOURCE_NAME}")

        def ready(url: str) -> None:
            out.print(f"Sign in at {url} as [bold]{DEMO_USER}[/bold] with password {password}")
            out.print("demo ready; logs and devices arrive within a minute. Ctrl-C stops it.")
            if open_browser:
                webbrowser.open(f"{url}/login")

        run_serve(settings, "127.0.0.1", port, stop=stop, on_ready=ready)
        out.print("Stopped.")


def simulator_config(devices: int, events: int) -> SimulatorConfig:
    """The demo's tenant: seeded, so the same sizes give the same devices, events and token."""
    return SimulatorConfig(devices=devices, events=events, history_days=365, seed=1)


def _register(state: StateDB, base_url: str, token: str) -> str:
    """Source, collection, mapping and the demo account, made afresh; returns its password."""
    with contextlib.suppress(NotFound):
        mappings.remove_mapping(state, MAPPING)
    with contextlib.suppress(NotFound):
        sources.remove_source(state, SOURCE_NAME)
    source = sources.add_source(state, SOURCE_NAME, base_url, token, poll_interval=10)
    with contextlib.suppress(AlreadyExists):
        collections.create_collection(
            state,
            COLLECTION,
            [
                collections.FieldSpec(label, FieldType(kind), unique)
                for _, label, kind, unique in FIELDS
            ],
        )
    identifier, *others = FIELDS
    mappings.create_mapping(
        state,
        mappings.MappingSpec(
            name=MAPPING,
            source=source.name,
            collection=COLLECTION,
            identifier=mappings.Pair(identifier[0], identifier[1]),
            pairs=[mappings.Pair(key, label) for key, label, _, _ in others],
            schedule_minutes=5,
        ),
    )
    password = secrets.token_urlsafe(12)
    try:
        users.create_user(state, DEMO_USER, password)
    except AlreadyExists:
        users.set_password(state, DEMO_USER, password)
    return password
