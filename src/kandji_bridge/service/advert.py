"""How CLI commands find a running `serve` of the same home and ask it to do what needs the log
store it holds (only one process may open an embedded chDB store).

`serve` writes `serve.json` in the home, readable only by its owner (0600): its URL, its pid, host
and start time, the log store it holds and a random local credential made for this run. The
credential lets the CLI run a query, run a poll (a resync, a backfill), change a source's
retention, remove a source with its events, and list, validate, import, run, enable and disable
detections and list alerts through the REST API, nothing else; it is never a Kandji token and is
not stored anywhere else. An advert whose process is gone or does not answer is ignored. A second
`serve` on the same embedded store reads it to say which process owns it.
"""

import contextlib
import hmac
import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from kandji_bridge.config import Settings, ensure_home
from kandji_bridge.errors import BridgeError

ADVERT_FILE = "serve.json"
LOCAL_CREDENTIAL_PREFIX = "kbl_"
_HEALTH_SECONDS = 3.0
_POLL_WAIT_SECONDS = 0.5


@dataclass(frozen=True)
class Advert:
    """A running `serve` of this home, as it announced itself."""

    url: str
    pid: int
    log_store: str
    credential: str = field(repr=False)
    host: str = ""
    started_at: datetime | None = None


def new_credential() -> str:
    return LOCAL_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def is_local_credential(sent: str, credential: str) -> bool:
    return bool(credential) and hmac.compare_digest(sent.encode(), credential.encode())


def client_url(url: str) -> str:
    """The URL a local client reaches: a wildcard bind answers on the loopback address."""
    return url.replace("//0.0.0.0:", "//127.0.0.1:").replace("//[::]:", "//[::1]:")


def publish(settings: Settings, url: str, credential: str) -> Advert:
    """Write `serve.json` (0600, replaced atomically) for this process."""
    advert = Advert(
        client_url(url),
        os.getpid(),
        settings.log_store,
        credential,
        socket.gethostname(),
        datetime.now(UTC).replace(microsecond=0),
    )
    path = ensure_home(settings) / ADVERT_FILE
    partial = path.with_name(f".{ADVERT_FILE}.{os.getpid()}")
    data = json.dumps(
        {
            "url": advert.url,
            "pid": advert.pid,
            "log_store": advert.log_store,
            "credential": credential,
            "host": advert.host,
            "started_at": advert.started_at.isoformat() if advert.started_at else None,
        }
    )
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(data)
    os.replace(partial, path)
    return advert


def withdraw(settings: Settings, advert: Advert) -> None:
    """Remove `serve.json` if it is still this process's (another serve may have replaced it)."""
    path = settings.home / ADVERT_FILE
    found = _read(path)
    if found is not None and found.credential == advert.credential:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def find_running(settings: Settings) -> Advert | None:
    """The `serve` of this home holding this log store, if one is alive and answering."""
    advert = _read(settings.home / ADVERT_FILE)
    if advert is None or advert.log_store != settings.log_store or not _alive(advert.pid):
        return None
    try:
        answered = httpx.get(f"{advert.url}/healthz", timeout=_HEALTH_SECONDS)
    except httpx.HTTPError:
        return None
    return advert if answered.status_code == 200 else None


def embedded_store_owner(settings: Settings, path: str) -> str:
    """Who holds the embedded store at `path`, for a process refused it: the `serve` of this
    home when its advert names that store (pid, host, since when, URL), else the pid that holds
    chDB's lock on the store, as the kernel lists it."""
    found = _read(settings.home / ADVERT_FILE)
    if found is not None and found.log_store == settings.log_store and _alive(found.pid):
        host = f" on {found.host}" if found.host else ""
        since = f" since {found.started_at:%Y-%m-%d %H:%M:%S} UTC" if found.started_at else ""
        return f"the `serve` with pid {found.pid}{host}{since}, at {found.url}"
    pid = _lock_holder(Path(path) / "status")
    if pid is not None:
        return f"another kandji-bridge process (pid {pid} on {socket.gethostname()})"
    return "another kandji-bridge process"


def _lock_holder(path: Path) -> int | None:
    """The pid holding a lock on `path`, from /proc/locks (Linux); None where it is not listed."""
    try:
        info = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    inode = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        # "1: FLOCK  ADVISORY  WRITE 27516 08:01:1234567 0 EOF"
        match = re.match(r"\d+: \S+\s+\S+\s+\S+\s+(\d+)\s+(\S+)\s", line)
        if match and match[2] == inode:
            return int(match[1])
    return None


def run_query(advert: Advert, sql: str) -> dict[str, Any]:
    """`POST /api/logs/query` on the running service: the whole result, as the API's JSON."""
    return _call(advert, "POST", "/api/logs/query", json={"sql": sql, "limit": None})


def poll_source(advert: Advert, name: str) -> dict[str, Any]:
    """Ask the running service to poll `name` now and wait for that poll to end; the source's
    status after it (as `GET /api/sources/{name}`)."""
    path = f"/api/sources/{name}"
    before = _call(advert, "GET", path).get("last_poll_at")
    _call(advert, "POST", f"{path}/poll")
    while True:
        status = _call(advert, "GET", path)
        if not status.get("running") and status.get("last_poll_at") != before:
            return status
        time.sleep(_POLL_WAIT_SECONDS)


def run_pass(
    advert: Advert,
    name: str,
    *,
    backfill_days: int | None,
    window: tuple[datetime, datetime] | None,
) -> dict[str, Any]:
    """A resync (`window`) or a first sync's backfill run by the running service, waited for:
    what the pass did (`POST /api/sources/{name}/poll`'s `result`)."""
    body: dict[str, Any] = {"backfill_days": backfill_days}
    if window is not None:
        body |= {"start": window[0].isoformat(), "end": window[1].isoformat()}
    return _call(advert, "POST", f"/api/sources/{quote(name, safe='')}/poll", json=body)["result"]


def set_retention(advert: Advert, name: str, days: int) -> dict[str, Any]:
    """The running service applies a source's new retention, to its stored events too."""
    body = {"retention_days": days}
    return _call(advert, "PATCH", f"/api/sources/{quote(name, safe='')}", json=body)


def remove_source_and_events(advert: Advert, name: str) -> int:
    """The running service removes a source and deletes its stored events; how many there were."""
    path = f"/api/sources/{quote(name, safe='')}"
    return _call(advert, "DELETE", path, params={"delete_events": "true"})["events_deleted"]


def list_detections(advert: Advert) -> tuple[list[dict[str, Any]], list[str]]:
    """The rules (as `GET /api/detections`) and the sentences of those that do not load."""
    problems = _call(advert, "GET", "/api/detections/problems")
    return _call(advert, "GET", "/api/detections"), [p["sentence"] for p in problems]


def validate_rules(advert: Advert, files: list[dict[str, str]]) -> dict[str, Any]:
    """The service checks a folder's rules, sent as their files: `rules` and `problems`."""
    return _call(advert, "POST", "/api/detections/validate", json={"files": files})


def import_rules(advert: Advert, files: list[dict[str, str]], folder: str) -> dict[str, Any]:
    """The service imports a folder's rules, sent as their files: `imported` and `replaced`."""
    body = {"files": files, "folder": folder}
    return _call(advert, "POST", "/api/detections/import", json=body)


def run_detection(advert: Advert, name: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The service runs a rule over [start, end): `columns`, `rows`, `truncated`."""
    body = {"start": start.isoformat(), "end": end.isoformat()}
    return _call(advert, "POST", f"/api/detections/{quote(name, safe='')}/run", json=body)


def switch_detection(
    advert: Advert, name: str, enabled: bool, notify: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The service enables (with channels to notify) or disables a rule; the rule as it now is."""
    path = f"/api/detections/{quote(name, safe='')}/{'enable' if enabled else 'disable'}"
    return _call(advert, "POST", path, json={"notify": list(notify)} if enabled else None)


def list_alerts(
    advert: Advert, detection: str | None, severity: str | None, limit: int
) -> list[dict[str, Any]]:
    """The newest alerts, as `GET /api/alerts`."""
    params: dict[str, Any] = {"limit": limit}
    params |= {k: v for k, v in (("detection", detection), ("severity", severity)) if v}
    return _call(advert, "GET", "/api/alerts", params=params)


def _call(advert: Advert, method: str, path: str, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {advert.credential}"}
    timeout = httpx.Timeout(10.0, read=None)  # the service bounds a query's time itself
    try:
        answer = httpx.request(
            method, advert.url + path, headers=headers, timeout=timeout, **kwargs
        )
    except httpx.HTTPError as exc:
        raise BridgeError(
            f"The running service at {advert.url} did not answer ({type(exc).__name__}); "
            "check that `serve` is still running and retry."
        ) from None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else None
        if not isinstance(detail, str):
            detail = f"The running service at {advert.url} answered HTTP {answer.status_code}."
        raise BridgeError(detail)
    return body


def _read(path: Path) -> Advert | None:
    try:
        data = json.loads(path.read_text())
        started = data.get("started_at")  # absent from the adverts of older versions
        return Advert(
            str(data["url"]),
            int(data["pid"]),
            str(data["log_store"]),
            str(data["credential"]),
            str(data.get("host") or ""),
            datetime.fromisoformat(started) if started else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
