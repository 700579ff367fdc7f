"""`serve`: the web app and the scheduler in one process and one event loop, until stopped.

SIGTERM or SIGINT (or `stop`, for `demo` and tests) stops gracefully: the scheduler starts no new
run, a running poll stops after storing the page in hand, a running sync finishes, running user
SQL queries are stopped (their requests answer 503 at once rather than hold the server for up to
their time limit), then the web server closes and `run_serve` returns (exit 0). A second signal
is not caught: it ends the process at once, which loses nothing either (the collector resumes
from what the store holds).
"""

import asyncio
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator

import uvicorn

from kandji_bridge import source_registry
from kandji_bridge.config import ENV_SECRET_KEY, Settings
from kandji_bridge.db import open_state
from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.enrich import build_enricher
from kandji_bridge.logs.store import (
    ChdbLogStore,
    LogStore,
    StoreBusy,
    open_ready_store,
    release_engine_pages,
)
from kandji_bridge.service import advert
from kandji_bridge.service.idle_memory import hand_back_when_idle
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.service.scheduler import Scheduler
from kandji_bridge.users import ensure_setup_link

_STOP_POLL_SECONDS = 0.2


def run_serve(
    settings: Settings,
    host: str,
    port: int,
    *,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve the web app and run the scheduler until SIGTERM, SIGINT or `stop`.

    Prints `Serving on URL` (and the one-time setup link while there is no user), then calls
    `on_ready(URL)`.
    """
    from kandji_bridge.web.app import create_app  # FastAPI and the UI load only for serving

    with contextlib.ExitStack() as resources:
        # The store first: a second serve on an embedded store is refused before it takes a
        # port or touches the state DB.
        store, damage = _open_store(settings)
        resources.callback(store.close)
        sock = _bind(host, port)
        resources.callback(sock.close)
        state = resources.enter_context(open_state(settings))
        if not source_registry.tokens_readable(state):
            raise BridgeError(
                "This serve's secret key reads none of the Kandji tokens stored in the state DB "
                "(they were stored with another key), so it would poll nothing: give it the "
                f"{ENV_SECRET_KEY} the other serves use, or the key file of the home that added "
                "the sources (docs/scale-out.md)."
            )
        if damage:
            print(f"Warning: {damage}", file=sys.stderr, flush=True)
        release_engine_pages()  # most of an idle serve's memory otherwise
        enricher = build_enricher()
        resources.callback(enricher.close)
        runtime = Runtime(settings, state, store, enricher)
        scheduler = Scheduler(runtime, lease_seconds=settings.lease_seconds)
        runtime.jobs = scheduler
        app = create_app(runtime)
        # CLI commands that need the log store this process holds send their request here.
        app.state.local_credential = advert.new_credential()
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            **proxy_options(settings),
        )
        url = f"http://{_url_host(host)}:{sock.getsockname()[1]}"
        asyncio.run(
            _serve(
                _Server(config),
                runtime,
                scheduler,
                sock,
                url,
                stop,
                on_ready or (lambda _url: None),
                app.state.local_credential,
            )
        )


def _open_store(settings: Settings) -> tuple[LogStore, str | None]:
    try:
        return open_ready_store(settings.log_store, settings.query_limits)
    except StoreBusy:
        path = settings.log_store.partition("://")[2]
        owner = advert.embedded_store_owner(settings, path)
        raise BridgeError(
            f"The embedded log store {path} is owned by {owner}, and only one process can own "
            "an embedded store: use that one, or, to run several `serve` processes, point them "
            "all at one PostgreSQL state DB and one ClickHouse log store (docs/scale-out.md)."
        ) from None


def proxy_options(settings: Settings) -> dict[str, object]:
    """uvicorn's proxy-header handling: X-Forwarded-For and X-Forwarded-Proto are believed only
    from the listed proxies. uvicorn would otherwise believe them from 127.0.0.1 (or whatever
    its own FORWARDED_ALLOW_IPS says), letting a local client pick its apparent address."""
    if not settings.forwarded_allow_ips:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.forwarded_allow_ips)}


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handlers: run_serve handles the signals, stopping the
    scheduler first, and must not have uvicorn re-raise them after shutdown (exit 0, not 143)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(
    server: _Server,
    runtime: Runtime,
    scheduler: Scheduler,
    sock: socket.socket,
    url: str,
    stop: threading.Event | None,
    on_ready: Callable[[str], None],
    local_credential: str,
) -> None:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    in_main_thread = threading.current_thread() is threading.main_thread()

    cancelling: list[asyncio.Future[None]] = []

    def shut_down() -> None:
        if in_main_thread:
            for number in signals:  # a second signal ends the process at once
                loop.remove_signal_handler(number)
        scheduler.stop()
        if not cancelling:  # in a thread: KILL QUERY waits for the store's session
            cancelling.append(loop.run_in_executor(None, runtime.store.cancel_user_queries))

    if in_main_thread:
        for number in signals:
            loop.add_signal_handler(number, shut_down)
    web = asyncio.create_task(server.serve(sockets=[sock]))
    jobs = asyncio.create_task(scheduler.run())
    waits = {web, jobs}
    idle = None
    if isinstance(runtime.store, ChdbLogStore):  # the engine runs in this process
        idle = asyncio.create_task(hand_back_when_idle(lambda: bool(scheduler.running_jobs())))
    if stop is not None:
        waits.add(asyncio.create_task(_wait_for(stop)))
    # uvicorn offers no event for "started"; it sets a flag.
    while not server.started and not web.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    published = None
    if server.started:
        published = advert.publish(runtime.settings, url, local_credential)
        _announce(runtime, url)
        on_ready(url)
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    if published is not None:
        advert.withdraw(runtime.settings, published)
    if idle is not None:
        idle.cancel()
    shut_down()
    await jobs  # the running jobs finish or store the page in hand
    await cancelling[0]
    server.should_exit = True
    await web
    for task in waits:
        task.cancel()
    if not server.started:
        raise BridgeError(
            f"The web server did not start on {url}; the messages above say why "
            "(run with --debug for more)."
        )


async def _wait_for(stop: threading.Event) -> None:
    # Polled: a thread blocked in stop.wait() would keep asyncio.run from returning.
    while not stop.is_set():  # noqa: ASYNC110
        await asyncio.sleep(_STOP_POLL_SECONDS)


def _announce(runtime: Runtime, url: str) -> None:
    print(f"Serving on {url}", flush=True)
    link = ensure_setup_link(runtime.state, url)
    if link:
        print(
            f"No account yet: open {link} to create the first admin account (the link works once).",
            flush=True,
        )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise BridgeError(
            f"Cannot listen on {_url_host(host)}:{port} ({reason}); "
            "stop the program using that port or pick another with --port."
        ) from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
