"""The simulated Kandji API as an ASGI app: routing, auth, permissions, throttling, faults, stats.

Checks run in Django REST Framework's order (authenticate, check permissions, throttle, then the
method), with DRF's messages, so clients meet the errors a real tenant gives.
"""

import asyncio
import re
import time
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from kandji_bridge.kandji.permissions import ADMINS, AUDIT_EVENTS, DEVICE_DETAILS, DEVICE_LIST
from kandji_bridge.simulator import admins, audit, details, devices
from kandji_bridge.simulator.config import SimulatorConfig
from kandji_bridge.simulator.state import SimulatorState

_DETAILS_PATH = re.compile(r"^/api/v1/devices/([^/]+)/details$")
_READ_METHODS = ("GET", "HEAD")


def _html_page(title: str) -> bytes:
    head = f"<html><head><title>{title}</title></head>"
    return f"{head}<body><center><h1>{title}</h1></center></body></html>".encode()


_HTML_ERRORS = {
    502: _html_page("502 Bad Gateway"),
    503: _html_page("503 Service Temporarily Unavailable"),
}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _detail(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"detail": message}, headers)


class DroppedResponse(Response):
    """Announces a full body, sends part of it, and stops: the server closes the connection, so
    the client sees a broken response (httpx: RemoteProtocolError) instead of an HTTP error."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send(
            {
                "type": "http.response.body",
                "body": self.body[: len(self.body) // 3],
                "more_body": True,
            }
        )


def create_app(config: SimulatorConfig, state: SimulatorState | None = None) -> Starlette:
    """The app for `config`; pass `state` to share it with the caller (server.py does)."""
    state = state or SimulatorState(config)

    async def stats_endpoint(request: Request) -> Response:
        with state.lock:
            return json_response(200, state.stats.snapshot())

    async def api(request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        endpoint, permission = _route(path)
        state.catch_up()
        with state.lock:
            response, fault = _answer(state, request, path, permission)
            status = str(response.status_code)
            if fault == "dropped":
                status = "dropped"
            state.stats.record(f"{request.method} {endpoint}", status, fault)
        if fault == "slow":
            await asyncio.sleep(config.slow_response_seconds)
        return response

    app = Starlette(
        routes=[
            Route("/_simulator/stats", stats_endpoint, methods=["GET"]),
            Route(
                "/{path:path}",
                api,
                methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            ),
        ]
    )
    app.state.simulator = state  # for code that only holds the app (an in-process ASGI client)
    return app


def _route(path: str) -> tuple[str, str | None]:
    """(path template for the stats, permission key needed) for a request path."""
    if path == AUDIT_EVENTS.path:
        return AUDIT_EVENTS.path, AUDIT_EVENTS.key
    if path == DEVICE_LIST.path:
        return DEVICE_LIST.path, DEVICE_LIST.key
    if path == ADMINS.path:
        return ADMINS.path, ADMINS.key
    if _DETAILS_PATH.match(path):
        return DEVICE_DETAILS.path, DEVICE_DETAILS.key
    return "(unmatched)", None


def _answer(
    state: SimulatorState, request: Request, path: str, permission: str | None
) -> tuple[Response, str | None]:
    """The response and the fault injected into it, if any. Runs under the state lock."""
    if permission is None:
        return _detail(404, "Not found."), None
    denied = _authorize(state, request.headers.get("authorization"), permission)
    if denied is not None:
        return denied, None
    wait = state.limiter.acquire(time.monotonic())
    if wait:
        unit = "second" if wait == 1 else "seconds"
        message = f"Request was throttled. Expected available in {wait} {unit}."
        return _detail(429, message, {"Retry-After": str(wait)}), None
    if request.method not in _READ_METHODS:
        return _detail(405, f'Method "{request.method}" not allowed.', {"Allow": "GET, HEAD"}), None
    fault = state.faults.next()
    if fault in ("http_500", "http_502", "http_503"):
        return _error_page(int(fault[5:])), fault
    response = _endpoint(state, request, path, permission)
    if fault is None or response.status_code != 200:
        return response, None
    if fault == "slow":  # the handler sleeps after releasing the lock
        return response, fault
    if fault == "truncated":
        cut = response.body[: max(1, len(response.body) // 2)]
        return Response(cut, 200, media_type="application/json"), fault
    return DroppedResponse(response.body, 200, media_type="application/json"), fault


def _authorize(state: SimulatorState, header: str | None, permission: str) -> Response | None:
    www = {"WWW-Authenticate": 'Bearer realm="api"'}
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return _detail(401, "Authentication credentials were not provided.", www)
    token = token.strip()
    if not token:
        return _detail(401, "Invalid token header. No credentials provided.", www)
    granted = state.tokens.get(token)
    if granted is None:
        return _detail(401, "Invalid token.", www)
    if permission not in granted:
        return _detail(403, "You do not have permission to perform this action.")
    return None


def _error_page(status: int) -> Response:
    """A 500 as Django REST Framework sends it, 502/503 as the load balancer in front does."""
    if status == 500:
        return json_response(500, {"detail": "A server error occurred."})
    return Response(_HTML_ERRORS[status], status, media_type="text/html")


def _endpoint(state: SimulatorState, request: Request, path: str, permission: str) -> Response:
    params = dict(request.query_params)
    if permission == AUDIT_EVENTS.key:
        return _audit_events(state, request, params)
    if permission == ADMINS.key:
        try:
            results, next_cursor = admins.page(state.tenant, params)
        except audit.QueryError as error:
            return json_response(error.status, error.body)
        return json_response(
            200, {"next": _page_url(request, next_cursor), "previous": None, "results": results}
        )
    if permission == DEVICE_LIST.key:
        try:
            chosen = devices.select(state.tenant, params, state.check_in_us)
        except devices.DeviceQueryError as error:
            return json_response(400, error.body)
        return json_response(200, [devices.device_json(d, state.check_in_us(d)) for d in chosen])
    device = state.tenant.devices_by_id.get(path.split("/")[4])
    if device is None:
        return _detail(404, "Not found.")
    body = details.device_details(device, state.config.seed, state.check_in_us(device))
    return json_response(200, body)


def _audit_events(state: SimulatorState, request: Request, params: dict[str, str]) -> Response:
    try:
        query = audit.parse_query(params)
    except audit.QueryError as error:
        return json_response(error.status, error.body)
    page = audit.page(state.events, query)
    return json_response(
        200,
        {
            "next": _page_url(request, page.next_cursor),
            "previous": _page_url(request, page.previous_cursor),
            "results": page.results,
        },
    )


def _page_url(request: Request, cursor: str | None) -> str | None:
    """The request's own URL (its host, its other parameters) with this cursor, as DRF builds it."""
    if cursor is None:
        return None
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", cursor))
    return f"{request.url.scheme}://{request.url.netloc}{request.url.path}?{urlencode(params)}"
