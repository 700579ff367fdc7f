"""The FastAPI application: every router, behind login, plus the error handlers.

Each feature (`sources`, `logs`, `integrations`, `collections`, `auth`, `system`) has a `pages`
router (the htmx UI) and an `api` router (JSON under /api/); both are mounted here with
`require_user`, so a route cannot be added without login by forgetting it. Only the modules'
`public` routers (/healthz, /login, /setup) and /static are open.
"""

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

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
)


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="kandji-bridge",
        version=__version__,
        summary="Kandji audit logs and devices: sources, logs, integrations, collections.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served behind login by `system`
    )
    app.state.runtime = runtime
    app.state.login_throttle = LoginThrottle()
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
    allow.install(app)
    _install_error_handlers(app)
    return app


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


def _status(exc: BridgeError) -> int:
    statuses = ((NotFound, 404), (AlreadyExists, 409), (QueryBusy, 429), (QueryCancelled, 503))
    return next((status for kind, status in statuses if isinstance(exc, kind)), 400)


def _problem(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("body", "query"))
    return f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid"))
