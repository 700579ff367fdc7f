"""`demo`: everything in one command, against a simulated tenant, so a new user sees it work.

The demo lives in a home of its own (`demo` under the usual home, or the `--home` given), so it
never touches the user's sources, mappings, users or logs. Its tenant is fixed by a file in that
home (seed, sizes, the end of its history): started again, it is the same tenant, events and ids
alike, and the store's deduplication by id keeps each event once.
"""

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import secrets
import shlex
import threading
import uuid
import webbrowser
from datetime import UTC, datetime
from pathlib import Path

from rich.markup import escape
from sqlalchemy import select

from kandji_bridge import source_registry as sources
from kandji_bridge import users
from kandji_bridge.assets import collections
from kandji_bridge.assets.convert import FieldType
from kandji_bridge.cli.common import out
from kandji_bridge.config import (
    ENV_DATABASE_URL,
    ENV_LOG_STORE,
    ENV_SECRET_KEY,
    Settings,
    load_settings,
)
from kandji_bridge.db import open_state
from kandji_bridge.db.models import Source
from kandji_bridge.db.state import StateDB
from kandji_bridge.detections import channels
from kandji_bridge.errors import AlreadyExists, BridgeError
from kandji_bridge.inventory import mappings
from kandji_bridge.kandji.permissions import AUDIT_EVENTS
from kandji_bridge.operations.detections import enable_pack
from kandji_bridge.operations.sources import verify_source
from kandji_bridge.operations.verify import verify
from kandji_bridge.service.serve import run_serve
from kandji_bridge.simulator.config import PERMISSION_KEYS, SimulatorConfig
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


NO_AUDIT_SOURCE = "demo-devices-only"  # its token lacks "List audit events", on purpose
DEMO_FOLDER = "demo"
TENANT_FILE = "demo-tenant.json"
SEED = 1
DEMO_CHANNEL = "demo-inbox"
# The pack's own */15 would show the first alert only after minutes. The newcomer's alert needs
# the backfill's window to end and the next one too (its baseline is what came before), so with
# one-minute windows it could take over two minutes; half-minute ones bring it well within them.
DEMO_SCHEDULE = "@30s"
# The demo's sources poll the local simulator this often (the product's default is 60 s), so the
# live events, the newcomer's views among them, are stored within seconds.
DEMO_POLL_INTERVAL = 10
# New audit events a minute while the demo runs.
LIVE_EVENTS_PER_MINUTE = 3
EXAMPLE_QUERY = "SELECT eventName, count() FROM kandji_logs GROUP BY eventName"
# Settings of the user's own setup that must not reach the demo or the commands it prints.
_USER_SETUP_VARIABLES = (ENV_DATABASE_URL, ENV_LOG_STORE, ENV_SECRET_KEY)


@dataclasses.dataclass(frozen=True)
class DemoTenant:
    """What fixes the demo's simulated tenant, kept in the demo home: a restart serves it again."""

    devices: int
    events: int
    history_end: datetime  # the end of its year of history; live events follow on the real clock
    seed: int = SEED


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
    settings, chosen = demo_settings(settings)
    tenant, notice = open_demo_home(settings.home, devices, events)
    with running_simulator(simulator_config(tenant), port=0) as simulator:
        # The simulator speaks plain http on loopback, which only listed hosts may.
        settings = dataclasses.replace(
            settings, allowed_hosts=settings.allowed_hosts | {simulator.host_port}
        )
        home = escape(str(settings.home))
        out.print(f"The demo runs in its own home, {home}; your own setup is not touched.")
        if notice:
            out.print(escape(notice))
        out.print(
            f"Simulated Kandji tenant at {simulator.base_url}: {len(simulator.devices)} devices, "
            f"{tenant.events} audit events over the last year, and "
            f"{LIVE_EVENTS_PER_MINUTE} new ones a minute while it runs."
        )
        report = asyncio.run(verify(simulator.base_url, simulator.token, settings.allowed_hosts))
        for check in report.checks:
            out.print(f"  {'ok  ' if check.ok else 'FAIL'}  {escape(check.name)}")
        full, no_audit = demo_tokens(tenant.seed)
        with open_state(settings) as state:
            password = _register(state, simulator.base_url, full, no_audit)
            for name in (SOURCE_NAME, NO_AUDIT_SOURCE):
                # What each token may do, shown on Sources and the mapping as for a saved source.
                verify_source(settings, state, name)
            _enable_detections(state)
            interval = sources.get_source(state, SOURCE_NAME).poll_interval_seconds
        out.print(
            f"Registered it as source [bold]{SOURCE_NAME}[/bold] (polled every {interval} s; "
            f"a source you add polls every {sources.DEFAULT_POLL_INTERVAL} s unless told "
            f"otherwise), collection [bold]{COLLECTION}[/bold] and "
            f"mapping [bold]{MAPPING}[/bold]."
        )
        out.print(
            f"Source [bold]{NO_AUDIT_SOURCE}[/bold] uses a second token, without "
            f'"{AUDIT_EVENTS.label}": its page shows what Kandji answers and how to grant it.'
        )
        out.print("Try the command line beside it, from another shell:")
        for line in cli_commands(settings.home, simulator.host_port):
            out.print(f"  {escape(line)}")
        again = "kandji-bridge demo" if not chosen else demo_command(settings.home)
        out.print(
            f"Run `{escape(again)}` again to go on with this demo (same tenant, no event twice); "
            f"remove it with: rm -rf {escape(shlex.quote(str(settings.home)))}"
        )

        def ready(url: str) -> None:
            out.print(f"Sign in at {url} as [bold]{DEMO_USER}[/bold] with password {password}")
            out.print("demo ready; logs and devices arrive within a minute. Ctrl-C stops it.")
            if open_browser:
                webbrowser.open(f"{url}/login")

        run_serve(settings, "127.0.0.1", port, stop=stop, on_ready=ready)
        out.print("Stopped.")


def demo_settings(settings: Settings, env: dict[str, str] | None = None) -> tuple[Settings, bool]:
    """The demo's settings, and whether the user chose its home. The home is the `--home` given,
    else `demo` in the usual home; its state DB and log store are always the embedded ones in it,
    and its key file its own, whatever the environment names for the user's own setup."""
    usual = load_settings(None, env).home
    chosen = settings.home != usual
    home = settings.home if chosen else usual / DEMO_FOLDER
    return (
        dataclasses.replace(
            settings,
            home=home,
            database_url=f"sqlite:///{home / 'state.db'}",
            log_store=f"chdb://{home / 'logs'}",
            secret_key=None,
        ),
        chosen,
    )


def open_demo_home(home: Path, devices: int, events: int) -> tuple[DemoTenant, str | None]:
    """The demo home's tenant, made on its first run; with a notice when the sizes asked differ
    from the tenant it holds (that one runs: its events are the ones stored already)."""
    path = home / TENANT_FILE
    if not path.exists():
        if home.is_dir() and any(home.iterdir()):
            raise BridgeError(
                f"{home} is not empty and holds no demo, so the demo leaves it alone; "
                "give --home a new or empty folder, or leave --home out."
            )
        tenant = DemoTenant(devices, events, datetime.now(UTC).replace(microsecond=0))
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        record = dataclasses.asdict(tenant) | {"history_end": tenant.history_end.isoformat()}
        path.write_text(json.dumps(record, indent=2) + "\n")
        return tenant, None
    try:
        record = json.loads(path.read_text())
        tenant = DemoTenant(
            devices=int(record["devices"]),
            events=int(record["events"]),
            history_end=datetime.fromisoformat(record["history_end"]),
            seed=int(record["seed"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        raise BridgeError(
            f"The demo's tenant file {path} is unreadable; remove {home} to start a new demo."
        ) from None
    if (tenant.devices, tenant.events) == (devices, events):
        return tenant, None
    return tenant, (
        f"This demo home holds a tenant of {tenant.devices} devices and {tenant.events} audit "
        f"events, which runs again as it was; for other sizes remove {home} or give --home "
        "another folder."
    )


def simulator_config(tenant: DemoTenant) -> SimulatorConfig:
    """The demo's tenant: the same seed, sizes and end of history give the same devices, events
    (ids included) and tokens; its clock is the real one, so live events continue after a stop."""
    full, no_audit = demo_tokens(tenant.seed)
    return SimulatorConfig(
        devices=tenant.devices,
        events=tenant.events,
        history_days=365,
        seed=tenant.seed,
        now=tenant.history_end,
        wall_clock=True,
        events_per_minute=LIVE_EVENTS_PER_MINUTE,
        attack_scenarios=True,
        tokens={full: PERMISSION_KEYS, no_audit: PERMISSION_KEYS - {AUDIT_EVENTS.key}},
    )


def demo_tokens(seed: int) -> tuple[str, str]:
    """The tenant's two tokens, derived from the seed: every permission, and all but the audit
    events'. The same on every run, so the sources registered before keep working."""
    return _token_value(f"token:{seed}"), _token_value(f"token:{seed}:no-audit")


def _token_value(name: str) -> str:
    return str(uuid.UUID(int=random.Random(name).getrandbits(128), version=4))


def demo_command(home: Path) -> str:
    return f"kandji-bridge --home {shlex.quote(str(home))} demo"


def cli_commands(home: Path, simulator_host_port: str) -> list[str]:
    """Shell lines that reach the demo's home from another shell while it runs."""
    cli = f"kandji-bridge --home {shlex.quote(str(home))}"
    lines = []
    variables = [name for name in _USER_SETUP_VARIABLES if name in os.environ]
    if variables:  # they would point the commands at the user's own setup
        lines.append(f"unset {' '.join(variables)}")
    lines += [
        f"export KANDJI_BRIDGE_ALLOWED_HOSTS={simulator_host_port}",
        f"{cli} verify {SOURCE_NAME}",
        f"{cli} verify {NO_AUDIT_SOURCE}",
        f"{cli} source list",
        f"{cli} mapping list",
        f"{cli} collection export {shlex.quote(COLLECTION)} --format csv",
        f"{cli} logs query {shlex.quote(EXAMPLE_QUERY)}",
    ]
    return lines


def _register(state: StateDB, base_url: str, token: str, no_audit_token: str) -> str:
    """The two sources (pointed at this run's simulator), the collection, the mapping and the
    demo account, each made on the first run and kept after; returns the account's new password."""
    # The source without audit events keeps the product's interval: each poll only shows its
    # refusal again, as a warning in the demo's terminal. An earlier demo's sources keep the
    # interval they have: it may have been edited since.
    intervals = {SOURCE_NAME: DEMO_POLL_INTERVAL, NO_AUDIT_SOURCE: sources.DEFAULT_POLL_INTERVAL}
    for name, value in ((SOURCE_NAME, token), (NO_AUDIT_SOURCE, no_audit_token)):
        try:
            sources.add_source(state, name, base_url, value, poll_interval=intervals[name])
        except AlreadyExists:
            _point_source_at(state, name, base_url)
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
    with contextlib.suppress(AlreadyExists):
        mappings.create_mapping(
            state,
            mappings.MappingSpec(
                name=MAPPING,
                source=SOURCE_NAME,
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


def _enable_detections(state: StateDB) -> None:
    """The pack, every 30 seconds, its alerts kept for the Alerts page through a channel that is
    off (alerts need a channel; this one sends nothing until someone points it somewhere)."""
    if DEMO_CHANNEL not in {channel.name for channel in channels.list_channels(state)}:
        channels.add_webhook(state, DEMO_CHANNEL, "https://example.invalid/kandji-bridge-demo")
        channels.set_enabled(state, DEMO_CHANNEL, False)
    enable_pack(state, DEMO_SCHEDULE, (DEMO_CHANNEL,))
    out.print(
        "Enabled the detection pack every 30 seconds; the tenant plays two attacks (a token with "
        "erase rights deleting devices, FileVault keys viewed at night and by a newcomer): see "
        "Alerts within two minutes."
    )


def _point_source_at(state: StateDB, name: str, base_url: str) -> None:
    """The simulator listens on a new port each run; the source keeps its id and checkpoint."""
    with state.session() as session:
        source = session.scalar(select(Source).where(Source.name == name))
        if source is not None:
            source.api_url = base_url
