"""/healthz for load balancers, /metrics for Prometheus (behind login: use an API token), and
the API's own documentation (OpenAPI and Swagger UI)."""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from kandji_bridge.operations.about import about
from kandji_bridge.service.metrics import render_metrics
from kandji_bridge.web.auth import runtime_of
from kandji_bridge.web.templating import render

public = APIRouter(include_in_schema=False)
pages = APIRouter(include_in_schema=False)
api = APIRouter(include_in_schema=False)


@public.get("/healthz")
async def healthz() -> dict[str, str]:
    # On the event loop, not in the thread pool: it answers even when every pool thread waits.
    return {"status": "ok"}


@api.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@api.get("/docs")
def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="kandji-bridge API",
        swagger_js_url="/static/swagger-ui/swagger-ui-bundle.js",
        swagger_css_url="/static/swagger-ui/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    )


@pages.get("/about")
def about_page(request: Request) -> HTMLResponse:
    runtime = runtime_of(request)
    shown = about(runtime.settings, runtime.store, runtime.enricher)
    return render(request, "about.html", {"about": shown, "section": "about"})


@pages.get("/metrics")
def metrics(request: Request) -> Response:
    body, content_type = render_metrics(runtime_of(request))
    return Response(body, media_type=content_type)
