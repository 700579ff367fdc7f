"""Who a request is, for every page and API route: browser sessions with CSRF tokens, API tokens
for scripts, and what a request without either gets (a sign-in page, or 401 JSON).

A browser signs in with a username and password and gets an HttpOnly, SameSite cookie holding a
random session id; every state-changing request of that session must carry the session's CSRF
token (the form field `csrf_token`, or the `X-CSRF-Token` header that htmx sends). Scripts send
`Authorization: Bearer kbt_...` instead and need no CSRF token: no browser adds that header.
A token's scope says what it may do: `read` tokens get the pages, queries and /metrics, and
every state-changing route refuses them; `admin` tokens and browser sessions may do everything.
The sign-in and setup forms, used before any session exists, carry a double-submit token.
"""

import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response

from kandji_bridge import users
from kandji_bridge.service import advert
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web.templating import render

SESSION_COOKIE = "kb_session"
LOGIN_CSRF_COOKIE = "kb_login_csrf"
NOT_SIGNED_IN = "Sign in first: send a session cookie or 'Authorization: Bearer TOKEN'."
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POST routes that change nothing (a SQL query does not fit a URL): open to `read` tokens.
READ_ONLY_ENDPOINTS = frozenset(
    {
        "kandji_bridge.web.logs.api.run_query",
        "kandji_bridge.web.detections.api.validate_rules",
        "kandji_bridge.web.detections.api.run_detection",
    }
)
# What the CLI of the same home may do through serve's local credential (service/advert.py).
LOCAL_ENDPOINTS = frozenset(
    {
        "kandji_bridge.web.logs.api.run_query",
        "kandji_bridge.web.sources.api.api_get_source",
        "kandji_bridge.web.sources.api.api_poll_source",
        "kandji_bridge.web.sources.api.api_remove_source",
        "kandji_bridge.web.sources.api.api_update_source",
        "kandji_bridge.web.detections.api.list_detections",
        "kandji_bridge.web.detections.api.list_rule_problems",
        "kandji_bridge.web.detections.api.validate_rules",
        "kandji_bridge.web.detections.api.import_rules",
        "kandji_bridge.web.detections.api.run_detection",
        "kandji_bridge.web.detections.api.enable_detection",
        "kandji_bridge.web.detections.api.disable_detection",
        "kandji_bridge.web.detections.api.list_alerts",
    }
)
LOCAL_CLI = users.UserInfo(
    id="local-cli",
    username="cli",
    is_admin=False,
    created_at=datetime.min.replace(tzinfo=UTC),
    last_login_at=None,
)
NEEDS_ADMIN_SCOPE = (
    "This API token may only read (its scope is read); make an admin token for changes with "
    "`kandji-bridge user token USERNAME --name NAME --scope admin`."
)


@dataclass(frozen=True)
class Principal:
    """Who made the request, and how they proved it."""

    user: users.UserInfo
    via: str  # "session" or "token"
    csrf_token: str = ""  # the session's; empty for API tokens
    session_secret: str = ""
    scope: str = users.ADMIN  # a token's own; sessions are admins'


class NotSignedIn(Exception):
    """The request carries no valid session cookie or API token."""


class CsrfRefused(Exception):
    """A state-changing browser request without the session's CSRF token."""


class ScopeRefused(Exception):
    """A state-changing request made with a `read` API token."""


def runtime_of(request: Request) -> Runtime:
    return request.app.state.runtime


async def require_user(request: Request) -> Principal:
    """The dependency on every route but /healthz, /login, /setup and the static files."""
    runtime = runtime_of(request)
    principal = await run_in_threadpool(_identify, runtime, request)
    if principal is None:
        raise NotSignedIn
    if request.method not in SAFE_METHODS and principal.via == "session":
        sent = request.headers.get("x-csrf-token") or await _form_field(request, "csrf_token")
        if not sent or not hmac.compare_digest(sent, principal.csrf_token):
            raise CsrfRefused
    if principal.via == "local" and _endpoint_name(request) not in LOCAL_ENDPOINTS:
        raise NotSignedIn
    if principal.scope != users.ADMIN and not reads_only(request):
        raise ScopeRefused
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]


async def identify_for_page(request: Request) -> None:
    """Who is signed in, for a page no route rendered (a 404): the layout shows their menu."""
    if getattr(request.state, "principal", None) is None:
        runtime = runtime_of(request)
        principal = await run_in_threadpool(_identify, runtime, request)
        if principal is not None and principal.via == "session":
            request.state.principal = principal


def _identify(runtime: Runtime, request: Request) -> Principal | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        local = getattr(request.app.state, "local_credential", "")
        if credential.startswith(advert.LOCAL_CREDENTIAL_PREFIX):
            if not advert.is_local_credential(credential.strip(), local):
                return None
            return Principal(LOCAL_CLI, "local", scope=users.ADMIN)
        found = users.token_user(runtime.state, credential.strip())
        return Principal(found.user, "token", scope=found.scope) if found else None
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    found = users.session_user(runtime.state, secret)
    if found is None:
        return None
    return Principal(found.user, "session", found.csrf_token, secret)


def reads_only(request: Request) -> bool:
    """Whether the request's route only reads: a GET (HEAD, OPTIONS) or a read-only POST."""
    if request.method in SAFE_METHODS:
        return True
    return _endpoint_name(request) in READ_ONLY_ENDPOINTS


def _endpoint_name(request: Request) -> str:
    endpoint = request.scope.get("endpoint")
    return f"{getattr(endpoint, '__module__', '')}.{getattr(endpoint, '__qualname__', '')}"


async def _form_field(request: Request, name: str) -> str:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return ""
    value = (await request.form()).get(name)
    return value if isinstance(value, str) else ""


def wants_html(request: Request) -> bool:
    if request.url.path.startswith("/api/") or request.url.path == "/metrics":
        return False
    return "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers


def install_handlers(app: FastAPI) -> None:
    """Unauthenticated requests: browsers go to the sign-in page, scripts get 401 JSON."""

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if not wants_html(request):
            return JSONResponse(
                {"detail": NOT_SIGNED_IN},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        target = "/login?next=" + quote(_path_with_query(request), safe="")
        if "hx-request" in request.headers:
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, exc: CsrfRefused) -> Response:
        message = "The form's security token is missing or out of date; reload the page and retry."
        if not wants_html(request):
            return JSONResponse({"detail": message}, status_code=403)
        return render(
            request, "error.html", {"title": "Refused", "message": message}, status_code=403
        )

    @app.exception_handler(ScopeRefused)
    async def scope_refused(request: Request, exc: ScopeRefused) -> Response:
        if not wants_html(request):
            return JSONResponse({"detail": NEEDS_ADMIN_SCOPE}, status_code=403)
        context = {"title": "Refused", "message": NEEDS_ADMIN_SCOPE}
        return render(request, "error.html", context, status_code=403)


def _path_with_query(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")
