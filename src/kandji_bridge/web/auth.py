"""Login for every page and API route: browser sessions with CSRF tokens, API tokens for scripts.

A browser signs in with a username and password and gets an HttpOnly, SameSite cookie holding a
random session id; every state-changing request of that session must carry the session's CSRF
token (the form field `csrf_token`, or the `X-CSRF-Token` header that htmx sends). Scripts send
`Authorization: Bearer kbt_...` instead and need no CSRF token: no browser adds that header.
The sign-in and setup forms, used before any session exists, carry a double-submit token.
"""

import hmac
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from kandji_bridge import users
from kandji_bridge.errors import BridgeError
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web.templating import render

SESSION_COOKIE = "kb_session"
LOGIN_CSRF_COOKIE = "kb_login_csrf"
NOT_SIGNED_IN = "Sign in first: send a session cookie or 'Authorization: Bearer TOKEN'."
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Failed sign-ins allowed per window: per address and username, and per address alone.
LOGIN_WINDOW_SECONDS = 15 * 60
LOGIN_FAILURES_PER_USERNAME = 5
LOGIN_FAILURES_PER_ADDRESS = 20


@dataclass(frozen=True)
class Principal:
    """Who made the request, and how they proved it."""

    user: users.UserInfo
    via: str  # "session" or "token"
    csrf_token: str = ""  # the session's; empty for API tokens
    session_secret: str = ""


class NotSignedIn(Exception):
    """The request carries no valid session cookie or API token."""


class CsrfRefused(Exception):
    """A state-changing browser request without the session's CSRF token."""


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
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]


def _identify(runtime: Runtime, request: Request) -> Principal | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        user = users.token_user(runtime.state, credential.strip())
        return Principal(user, "token") if user else None
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    found = users.session_user(runtime.state, secret)
    if found is None:
        return None
    return Principal(found.user, "session", found.csrf_token, secret)


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


# -- Sign-in throttle --------------------------------------------------------------------------


class LoginThrottle:
    """Counts failed sign-ins in a sliding window; refuses more once a limit is reached."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = defaultdict(deque)

    def wait_seconds(self, address: str, username: str) -> int:
        """0 when a sign-in may be tried now, else how long to wait."""
        now = time.monotonic()
        waits = [
            self._wait(f"{address}|{username.lower()}", LOGIN_FAILURES_PER_USERNAME, now),
            self._wait(address, LOGIN_FAILURES_PER_ADDRESS, now),
        ]
        return max(waits)

    def failed(self, address: str, username: str) -> None:
        now = time.monotonic()
        self._failures[f"{address}|{username.lower()}"].append(now)
        self._failures[address].append(now)

    def _wait(self, key: str, limit: int, now: float) -> int:
        window = self._failures.get(key)
        if not window:
            return 0
        while window and window[0] <= now - LOGIN_WINDOW_SECONDS:
            window.popleft()
        if len(window) < limit:
            return 0
        return int(window[0] + LOGIN_WINDOW_SECONDS - now) + 1


# -- Pages: sign in, sign out, first-run setup -----------------------------------------------

public = APIRouter(include_in_schema=False)
pages = APIRouter(include_in_schema=False)
api = APIRouter(tags=["account"])


def _throttle(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


def _safe_next(value: str | None) -> str:
    """Only a path of this site: never an absolute or scheme-relative URL (an open redirect)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def _path_with_query(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _login_form(
    request: Request,
    *,
    next_url: str,
    username: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    has_users = users.user_count(runtime_of(request).state) > 0
    response = render(
        request,
        "login.html",
        {
            "login_csrf": csrf,
            "next_url": next_url,
            "values": {"username": username},
            "errors": errors or {},
            "has_users": has_users,
        },
        status_code=status_code,
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


def _login_csrf_ok(request: Request, sent: str) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(cookie and sent) and hmac.compare_digest(cookie, sent)


def _set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _signed_in(request: Request, user_id: str, next_url: str) -> Response:
    secret, _ = users.start_session(runtime_of(request).state, user_id)
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    _set_cookie(
        request, response, SESSION_COOKIE, secret, int(users.SESSION_LIFETIME.total_seconds())
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@public.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    return _login_form(request, next_url=_safe_next(next))


@public.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    next_url = _safe_next(next)
    if not _login_csrf_ok(request, csrf_token):
        errors = {"": "The sign-in form had expired; sign in again."}
        return _login_form(
            request, next_url=next_url, username=username, errors=errors, status_code=403
        )
    address = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    wait = throttle.wait_seconds(address, username)
    if wait:
        minutes = max(1, round(wait / 60))
        errors = {"": f"Too many failed sign-ins; wait {minutes} minute(s) and try again."}
        return _login_form(
            request, next_url=next_url, username=username, errors=errors, status_code=429
        )
    user = users.authenticate(runtime_of(request).state, username, password)
    if user is None:
        throttle.failed(address, username)
        errors = {"": "Wrong username or password; check both and try again."}
        return _login_form(
            request, next_url=next_url, username=username, errors=errors, status_code=401
        )
    return _signed_in(request, user.id, next_url)


@public.get("/setup/{secret}")
def setup_page(request: Request, secret: str) -> Response:
    if not users.setup_link_valid(runtime_of(request).state, secret):
        return _setup_gone(request)
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "setup.html", {"login_csrf": csrf, "secret": secret})
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, csrf, max_age=3600)
    return response


@public.post("/setup/{secret}")
def setup(
    request: Request,
    secret: str,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    state = runtime_of(request).state
    if not users.setup_link_valid(state, secret):
        return _setup_gone(request)
    errors: dict[str, str] = {}
    if not _login_csrf_ok(request, csrf_token):
        errors[""] = "The setup form had expired; fill it in again."
    try:
        users.validate_username(username)
    except users.InvalidUser as exc:
        errors["username"] = str(exc)
    try:
        users.validate_password(password)
    except users.InvalidUser as exc:
        errors["password"] = str(exc)
    if not errors.get("password") and password != confirm:
        errors["confirm"] = "The two passwords differ; type the same password twice."
    if not errors:
        try:
            user = users.use_setup_link(state, secret, username, password)
        except BridgeError as exc:
            errors[""] = str(exc)
        else:
            return _signed_in(request, user.id, "/")
    context = {
        "login_csrf": request.cookies.get(LOGIN_CSRF_COOKIE, ""),
        "secret": secret,
        "values": {"username": username},
        "errors": errors,
    }
    return render(request, "setup.html", context, status_code=400)


def _setup_gone(request: Request) -> Response:
    message = (
        "This setup link has been used or has expired. Sign in, or restart `kandji-bridge serve` "
        "for a new link, or run `kandji-bridge user create`."
    )
    return render(
        request, "error.html", {"title": "Setup link", "message": message}, status_code=410
    )


@pages.post("/logout")
def logout(request: Request, principal: CurrentUser) -> Response:
    if principal.session_secret:
        users.end_session(runtime_of(request).state, principal.session_secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- Account: API tokens -----------------------------------------------------------------------


@pages.get("/account")
def account_page(request: Request, principal: CurrentUser) -> Response:
    return _account(request, principal)


@pages.post("/account/tokens")
def create_token_page(
    request: Request, principal: CurrentUser, name: Annotated[str, Form()] = ""
) -> Response:
    try:
        token = users.create_api_token(runtime_of(request).state, principal.user.username, name)
    except users.InvalidUser as exc:
        return _account(request, principal, errors={"name": str(exc)}, name=name, status_code=400)
    return _account(request, principal, new_token=token)


@pages.post("/account/tokens/{token_id}/revoke")
def revoke_token_page(request: Request, principal: CurrentUser, token_id: str) -> Response:
    users.revoke_api_token(runtime_of(request).state, principal.user.username, token_id)
    return RedirectResponse("/account", status_code=303)


def _account(
    request: Request,
    principal: Principal,
    *,
    new_token: str = "",
    errors: dict[str, str] | None = None,
    name: str = "",
    status_code: int = 200,
) -> Response:
    tokens = users.list_api_tokens(runtime_of(request).state, principal.user.username)
    context = {
        "tokens": tokens,
        "new_token": new_token,
        "errors": errors or {},
        "values": {"name": name},
    }
    response = render(request, "account.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"  # the page may show a new token once
    return response


class Me(BaseModel):
    username: str
    is_admin: bool
    via: str


@api.get("/me")
def me(principal: CurrentUser) -> Me:
    """Who this request is signed in as."""
    return Me(username=principal.user.username, is_admin=principal.user.is_admin, via=principal.via)
