"""The FastAPI application: every router, behind login, plus the error handlers.

Each feature (`sources`, `logs`, `integrations`, `collections`, `auth`, `system`) has a `pages`
router (the htmx UI) and an `api` router (JSON under /api/); both are mounted here with
`require_user`, so a route cannot be added without login by forgetting it. Only the modules'
`public` routers (/healthz, /login, /setup) and /static are open.
"""

import re

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from kandji_bridge import __version__
from kandji_bridge.errors import AlreadyExists, BridgeError, NotFound, web_message
from kandji_bridge.logs.user_queries import QueryBusy, QueryCancelled
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web import allow, system
from kandji_bridge.web.auth import api as auth_api
from kandji_bridge.web.auth import pages as auth_pages
from kandji_bridge.web.auth import sessions
from kandji_bridge.web.auth.throttle import LoginThrottle
from kandji_bridge.web.collections import api as collections_api
from kandji_bridge.web.collections import pages as collections_pages
from kandji_bridge.web.detections import api as detections_api
from kandji_bridge.web.detections import pages as detections_pages
from kandji_bridge.web.errors_schema import ERROR_RESPONSES
from kandji_bridge.web.integrations import api as integrations_api
from kandji_bridge.web.integrations import pages as integrations_pages
from kandji_bridge.web.logs import api as logs_api
from kandji_bridge.web.logs import pages as logs_pages
from kandji_bridge.web.sources import api as sources_api
from kandji_bridge.web.sources import pages as sources_pages
from kandji_bridge.web.templating import STATIC_DIR, render

# Each feature's (pages router, api router), in the order their routes are matched.
FEATURES = (
    (auth_pages.pages, auth_api.api),
    (system.pages, system.api),
    (sources_pages.pages, sources_api.api),
    (logs_pages.pages, logs_api.api),
    (integrations_pages.router, integrations_api.router),
    (collections_pages.router, collections_api.router),
    (detections_pages.pages, detections_api.api),
)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="kandji-bridge",
        version=__version__,
        summary="Kandji audit logs and devices: sources, logs, integrations, collections.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served behind login by `system`
        generate_unique_id_function=operation_id,
    )
    app.state.runtime = runtime
    app.state.login_throttle = LoginThrottle(runtime.state)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(system.public)
    app.include_router(auth_pages.public)
    signed_in = [Depends(sessions.require_user)]
    for pages, api in FEATURES:
        app.include_router(pages, dependencies=signed_in)
        app.include_router(api, prefix="/api", dependencies=signed_in, responses=ERROR_RESPONSES)

    @app.get("/", include_in_schema=False, dependencies=signed_in)
    def home() -> Response:
        return RedirectResponse("/sources", status_code=303)

    sessions.install_handlers(app)
    _install_error_handlers(app)
    return app


def operation_id(route: APIRoute) -> str:
    """An operation's id in the API docs and generated clients: its summary in camelCase
    ("List sources" -> listSources) rather than FastAPI's function-name-and-path default."""
    words = re.findall(r"[A-Za-z0-9]+", (route.summary or route.name).replace("'s", ""))
    return words[0].lower() + "".join(word.capitalize() for word in words[1:])


def _install_error_handlers(app: FastAPI) -> None:
    """A BridgeError is the user's to fix: its sentence, with the status code that fits."""

    @app.exception_handler(BridgeError)
    async def bridge_error(request: Request, exc: BridgeError) -> Response:
        status = _status(exc)
        # Past the query caps, or while stopping: the same request may work a little later.
        headers = {"Retry-After": "10"} if status in (429, 503) else None
        if not sessions.wants_html(request):
            return JSONResponse({"detail": web_message(exc)}, status_code=status, headers=headers)
        context = {"title": "Not found" if status == 404 else "Error", "message": web_message(exc)}
        page = render(request, "error.html", context, status_code=status)
        page.headers.update(headers or {})
        return page

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """An unknown path or a wrong method: a page in the layout for a browser."""
        allow.add_allow_header(request, exc)
        if request.url.path.startswith("/api/") or not sessions.wants_html(request):
            return await http_exception_handler(request, exc)
        await sessions.identify_for_page(request)  # the menu, for a signed-in user
        title, message = _HTTP_PAGES.get(
            exc.status_code, ("Error", f"The request failed (HTTP {exc.status_code}).")
        )
        context = {"title": title, "message": message}
        return render(request, "error.html", context, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(_problem(error) for error in exc.errors())
        message = f"The request is not valid: {problems}."
        if not sessions.wants_html(request):
            # Without each error's `input`: it can be the whole body, a Kandji token included.
            errors = [{k: v for k, v in e.items() if k != "input"} for e in exc.errors()]
            return JSONResponse(
                {"detail": message, "errors": jsonable_encoder(errors)}, status_code=422
            )
        return render(
            request, "error.html", {"title": "Error", "message": message}, status_code=422
        )


_HTTP_PAGES = {
    404: ("Not found", "There is no page at this address; check the link, or go back."),
    405: ("Error", "This page cannot be used that way; go back and use its links or forms."),
}


def _status(exc: BridgeError) -> int:
    statuses = ((NotFound, 404), (AlreadyExists, 409), (QueryBusy, 429), (QueryCancelled, 503))
    return next((status for kind, status in statuses if isinstance(exc, kind)), 400)


def _problem(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query"))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))
