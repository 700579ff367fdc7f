"""Login for every page and API route: browser sessions with CSRF tokens, API tokens for scripts.

A browser signs in with a username and password and gets an HttpOnly, SameSite cookie holding a
random session id; every state-changing request of that session must carry the session's CSRF
token (the form field `csrf_token`, or the `X-CSRF-Token` header that htmx sends). Scripts send
`Authorization: Bearer kbt_...` instead and need no CSRF token: no browser adds that header.
A token's scope says what it may do: `read` tokens get the pages, queries and /metrics, and
every state-changing route refuses them; `admin` tokens and browser sessions may do everything.
The sign-in and setup forms, used before any session exists, carry a double-submit token.

The client's address, which the sign-in throttle counts by, is the socket's peer unless `serve`
was told to trust a reverse proxy's X-Forwarded-For (`--forwarded-allow-ips`), so a client
cannot pick its own apparent address.
"""

import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
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
# How often the throttle forgets the addresses and usernames whose failures have all expired.
LOGIN_SWEEP_SECONDS = 60
# POST routes that change nothing (a SQL query does not fit a URL): open to `read` tokens.
READ_ONLY_ENDPOINTS = frozenset({"kandji_bridge.web.logs.run_query"})
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
    if principal.scope != users.ADMIN and not reads_only(request):
        raise ScopeRefused
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(require_user)]


def _identify(runtime: Runtime, request: Request) -> Principal | None:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
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
    endpoint = request.scope.get("endpoint")
    name = f"{getattr(endpoint, '__module__', '')}.{getattr(endpoint, '__qualname__', '')}"
    return name in READ_ONLY_ENDPOINTS


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


# -- Sign-in throttle --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """A sign-in attempt counted by the throttle; `wait` > 0 if it was refused (not counted)."""

    keys: tuple[str, ...]
    at: float
    wait: int


class LoginThrottle:
    """Counts failed sign-ins in a sliding window; refuses more once a limit is reached.

    Checking the count and counting the attempt are one step under a lock, and an attempt counts
    as failed before its password is checked (its place is given back if the password was
    right): so parallel requests cannot all pass the check before the first failure is counted,
    and no more passwords are checked than the limit allows.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._swept = clock()

    def __len__(self) -> int:
        """How many addresses and address+username pairs are being counted."""
        return len(self._failures)

    def begin(self, address: str, username: str) -> LoginAttempt:
        """Count an attempt from `address` as `username`, or refuse it while a limit is reached."""
        keys = (f"{address}|{users.normalize_username(username)}", address)
        limits = (LOGIN_FAILURES_PER_USERNAME, LOGIN_FAILURES_PER_ADDRESS)
        with self._lock:
            now = self._clock()
            if now - self._swept >= LOGIN_SWEEP_SECONDS:
                self._sweep(now)
            wait = max(self._wait(key, limit, now) for key, limit in zip(keys, limits, strict=True))
            if wait:
                return LoginAttempt(keys, now, wait)
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)
            return LoginAttempt(keys, now, 0)

    def succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: the attempt is not a failure after all."""
        with self._lock:
            for key in attempt.keys:
                window = self._failures.get(key)
                if window is not None and attempt.at in window:
                    window.remove(attempt.at)
                    if not window:
                        del self._failures[key]

    def _wait(self, key: str, limit: int, now: float) -> int:
        window = self._failures.get(key)
        if window is None:
            return 0
        while window and window[0] <= now - LOGIN_WINDOW_SECONDS:
            window.popleft()
        if not window:
            del self._failures[key]
            return 0
        if len(window) < limit:
            return 0
        return int(window[0] + LOGIN_WINDOW_SECONDS - now) + 1

    def _sweep(self, now: float) -> None:
        """Forget the keys whose last failure left the window (addresses that never came back)."""
        self._swept = now
        expired = [
            key
            for key, window in self._failures.items()
            if window[-1] <= now - LOGIN_WINDOW_SECONDS
        ]
        for key in expired:
            del self._failures[key]


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
    # The socket's peer, or what a trusted proxy said it was (serve --forwarded-allow-ips).
    address = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    attempt = throttle.begin(address, username)
    if attempt.wait:
        minutes = max(1, round(attempt.wait / 60))
        errors = {"": f"Too many failed sign-ins; wait {minutes} minute(s) and try again."}
        return _login_form(
            request, next_url=next_url, username=username, errors=errors, status_code=429
        )
    user = users.authenticate(runtime_of(request).state, username, password)
    if user is None:
        errors = {"": "Wrong username or password; check both and try again."}
        return _login_form(
            request, next_url=next_url, username=username, errors=errors, status_code=401
        )
    throttle.succeeded(attempt)
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
    request: Request,
    principal: CurrentUser,
    name: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = users.READ,
) -> Response:
    state, username = runtime_of(request).state, principal.user.username
    try:
        token = users.create_api_token(state, username, name, scope)
    except users.InvalidUser as exc:
        field = "scope" if scope not in users.SCOPES else "name"
        return _account(
            request, principal, errors={field: str(exc)}, name=name, scope=scope, status_code=400
        )
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
    scope: str = users.READ,
    status_code: int = 200,
) -> Response:
    tokens = users.list_api_tokens(runtime_of(request).state, principal.user.username)
    context = {
        "tokens": tokens,
        "new_token": new_token,
        "errors": errors or {},
        "values": {"name": name, "scope": scope},
    }
    response = render(request, "account.html", context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"  # the page may show a new token once
    return response


class Me(BaseModel):
    username: str
    is_admin: bool
    via: str
    scope: str


@api.get("/me")
def me(principal: CurrentUser) -> Me:
    """Who this request is signed in as, and what it may do (`read` or `admin`)."""
    user = principal.user
    return Me(
        username=user.username, is_admin=user.is_admin, via=principal.via, scope=principal.scope
    )
