"""Where state lives and how to reach it, from `--home` and the KANDJI_BRIDGE_* environment."""

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from kandji_bridge.detections.limits import (
    ENV_DETECTION_SECONDS,
    ENV_SIGNAL_AGE_HOURS,
    DetectionLimits,
)
from kandji_bridge.errors import ConfigError
from kandji_bridge.kandji.limits import (
    ENV_MAX_AUDIT_PAGES,
    ENV_MAX_DEVICE_PAGES,
    ENV_RESPONSE_SECONDS,
    ENV_RUN_SECONDS,
    KandjiLimits,
)
from kandji_bridge.logs.user_queries import QueryLimits

ENV_HOME = "KANDJI_BRIDGE_HOME"
ENV_DATABASE_URL = "KANDJI_BRIDGE_DATABASE_URL"
ENV_LOG_STORE = "KANDJI_BRIDGE_LOG_STORE"
ENV_ALLOWED_HOSTS = "KANDJI_BRIDGE_ALLOWED_HOSTS"
ENV_SECRET_KEY = "KANDJI_BRIDGE_SECRET_KEY"  # noqa: S105 (a variable's name, not a secret)
# How long a job stays held by a process that stopped renewing it (hung, lost the network, or
# killed on another host): the time before another process may take it over.
ENV_LEASE_SECONDS = "KANDJI_BRIDGE_LEASE_SECONDS"
# Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto `serve` believes.
ENV_FORWARDED_ALLOW_IPS = "KANDJI_BRIDGE_FORWARDED_ALLOW_IPS"
DEFAULT_LEASE_SECONDS = 30.0
# What SQL that people type may use (logs/user_queries.py): time, memory, and how many at once.
ENV_QUERY_SECONDS = "KANDJI_BRIDGE_QUERY_SECONDS"
ENV_QUERY_MEMORY_MB = "KANDJI_BRIDGE_QUERY_MEMORY_MB"
ENV_QUERIES_PER_USER = "KANDJI_BRIDGE_QUERIES_PER_USER"
ENV_QUERIES = "KANDJI_BRIDGE_QUERIES"
# A new source's polling and retention (here, not in source_registry: the CLI shows them in its
# help without loading the state DB).
DEFAULT_POLL_INTERVAL = 60
# Longer than the year Kandji keeps: a data lake holds what Kandji has already dropped.
DEFAULT_RETENTION_DAYS = 730


@dataclass(frozen=True)
class Settings:
    home: Path
    # Out of repr: these may hold a password or the key that encrypts stored tokens.
    database_url: str = field(repr=False)
    log_store: str = field(repr=False)
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    secret_key: str | None = field(default=None, repr=False)
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    # None trusted: the socket's peer is the client (a client cannot pick its own address).
    forwarded_allow_ips: tuple[str, ...] = ()
    kandji_limits: KandjiLimits = field(default_factory=KandjiLimits)
    query_limits: QueryLimits = field(default_factory=QueryLimits)
    detection_limits: DetectionLimits = field(default_factory=DetectionLimits)

    @property
    def secret_key_file(self) -> Path:
        return self.home / "secret.key"


def parse_allowed_hosts(value: str | None) -> frozenset[str]:
    """`host[:port]` entries, comma-separated, compared case-insensitively.

    A pasted URL (`http://127.0.0.1:8089/`) counts as its `host:port`.
    """
    if not value:
        return frozenset()
    hosts = set()
    for part in value.split(","):
        entry = part.strip().lower()
        if "://" in entry:
            entry = entry.split("://", 1)[1]
        entry = entry.split("/", 1)[0]
        if entry:
            hosts.add(entry)
    return frozenset(hosts)


def parse_lease_seconds(value: str | None) -> float:
    """The leases' time to live in seconds, 1 to 3600 (default 30)."""
    if not value:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 1 <= seconds <= 3600:
        raise ConfigError(
            f"{ENV_LEASE_SECONDS} must be a number of seconds from 1 to 3600, not {value!r}."
        )
    return seconds


def parse_forwarded_allow_ips(value: str | None) -> tuple[str, ...]:
    """Comma-separated addresses or networks (`10.0.0.5`, `10.0.0.0/8`, `*` for any)."""
    entries = tuple(part.strip() for part in (value or "").split(",") if part.strip())
    for entry in entries:
        if entry == "*":
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"{entry!r} in the trusted proxy list is not an IP address or network; "
                "give addresses like 10.0.0.5 or 10.0.0.0/8, comma-separated."
            ) from None
    return entries


def load_settings(home: Path | str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Settings from an explicit home (the `--home` flag) and the environment."""
    env = dict(os.environ) if env is None else env
    home_value = home or env.get(ENV_HOME) or platformdirs.user_data_dir("kandji-bridge")
    home_path = Path(home_value).expanduser().absolute()
    if home_path.exists() and not home_path.is_dir():
        raise ConfigError(
            f"The home {home_path} is a file, not a folder; pass --home with a folder path."
        )
    return Settings(
        home=home_path,
        database_url=env.get(ENV_DATABASE_URL) or f"sqlite:///{home_path / 'state.db'}",
        log_store=env.get(ENV_LOG_STORE) or f"chdb://{home_path / 'logs'}",
        allowed_hosts=parse_allowed_hosts(env.get(ENV_ALLOWED_HOSTS)),
        secret_key=env.get(ENV_SECRET_KEY) or None,
        lease_seconds=parse_lease_seconds(env.get(ENV_LEASE_SECONDS)),
        forwarded_allow_ips=parse_forwarded_allow_ips(env.get(ENV_FORWARDED_ALLOW_IPS)),
        kandji_limits=parse_kandji_limits(env),
        query_limits=parse_query_limits(env),
        detection_limits=parse_detection_limits(env),
    )


def parse_kandji_limits(env: dict[str, str]) -> KandjiLimits:
    """The limits on one run against Kandji; unset variables keep their defaults."""
    defaults = KandjiLimits()

    def number(name: str, default: float, kind: type) -> float:
        value = env.get(name, "").strip()
        if not value:
            return default
        try:
            parsed = kind(value)
        except ValueError:
            parsed = 0
        if parsed <= 0:
            raise ConfigError(f"{name} is {value!r}; set it to a positive number, or unset it.")
        return parsed

    return KandjiLimits(
        response_seconds=number(ENV_RESPONSE_SECONDS, defaults.response_seconds, float),
        run_seconds=number(ENV_RUN_SECONDS, defaults.run_seconds, float),
        max_audit_pages=int(number(ENV_MAX_AUDIT_PAGES, defaults.max_audit_pages, int)),
        max_device_pages=int(number(ENV_MAX_DEVICE_PAGES, defaults.max_device_pages, int)),
    )


def parse_query_limits(env: dict[str, str]) -> QueryLimits:
    """The limits on SQL that people type; unset variables keep their defaults."""
    defaults = QueryLimits()

    def bounded(name: str, default: int, low: int, high: int, what: str) -> int:
        text = env.get(name, "").strip()
        if not text:
            return default
        if not text.isdigit() or not low <= int(text) <= high:
            raise ConfigError(f"{name} must be {what} from {low:,} to {high:,}, not {text!r}.")
        return int(text)

    return QueryLimits(
        seconds=bounded(ENV_QUERY_SECONDS, defaults.seconds, 1, 86_400, "a number of seconds"),
        memory_mb=bounded(
            ENV_QUERY_MEMORY_MB, defaults.memory_mb, 16, 1_048_576, "a number of megabytes"
        ),
        per_user=bounded(ENV_QUERIES_PER_USER, defaults.per_user, 1, 1000, "a count"),
        total=bounded(ENV_QUERIES, defaults.total, 1, 1000, "a count"),
    )


def parse_detection_limits(env: dict[str, str]) -> DetectionLimits:
    """How old a match's event may be and still be sent, and how long a rule may run."""
    defaults = DetectionLimits()

    def bounded(name: str, default: int, high: int, what: str) -> int:
        text = env.get(name, "").strip()
        if not text:
            return default
        if not text.isdigit() or not 1 <= int(text) <= high:
            raise ConfigError(
                f"{name} must be {what} from 1 to {high:,}, not {text!r}; set it so, or unset it "
                f"for the default ({default})."
            )
        return int(text)

    return DetectionLimits(
        signal_age_hours=bounded(
            ENV_SIGNAL_AGE_HOURS, defaults.signal_age_hours, 24 * 366, "a number of hours"
        ),
        run_seconds=bounded(
            ENV_DETECTION_SECONDS, defaults.run_seconds, 3600, "a number of seconds"
        ),
    )


def ensure_home(settings: Settings) -> Path:
    """Create the home folder (owner-only) on first use."""
    try:
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the home folder {settings.home} ({exc.strerror}); "
            "pass --home with a folder you can write to."
        ) from exc
    return settings.home
