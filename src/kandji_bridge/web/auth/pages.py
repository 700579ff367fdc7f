"""Sign in, sign out, the first-run setup link, and the account page with its API tokens."""

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from kandji_bridge import users
from kandji_bridge.errors import BridgeError
from kandji_bridge.web.auth.sessions import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    CurrentUser,
    Principal,
    runtime_of,
)
from kandji_bridge.web.auth.throttle import LoginThrottle
from kandji_bridge.web.templating import render

public = APIRouter(include_in_schema=False)
pages = APIRouter(include_in_schema=False)


def _throttle(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


def _safe_next(value: str | None) -> str:
    """Only a path of this site: never an absolute or scheme-relative URL (an open redirect)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/"


def _login_form(
    request: Request,
    *,
    next_url: str,
    username: str = "",
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    state = runtime_of(request).state
    has_users = users.user_count(state) > 0
    response = render(
        request,
        "login.html",
        {
            "login_csrf": csrf,
            "next_url": next_url,
            "values": {"username": username},
            "errors": errors or {},
            "has_users": has_users,
            "setup_link_file": users.setup_link_file(state.settings),
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
    state = runtime_of(request).state
    if users.user_count(state):
        message = "This setup link has been used or has expired; sign in with your account."
    else:
        users.renew_setup_link(state, str(request.base_url))
        message = (
            "This setup link has been used or has expired. No account exists yet: open the "
            f"setup link in the file {users.setup_link_file(state.settings)} on the machine "
            "that runs the service (readable only by the account that runs it); a new one is "
            "there now."
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
