"""Login on every route: sessions, CSRF, API tokens, the setup link, the sign-in throttle."""

import re

import fastapi.routing
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from starlette.routing import Mount

from kandji_bridge import users
from kandji_bridge.service.runtime import Runtime
from kandji_bridge.web import system
from kandji_bridge.web.app import create_app
from kandji_bridge.web.auth import pages as auth_pages
from kandji_bridge.web.auth import sessions, throttle

from ..conftest import ADMIN, PASSWORD, sign_in

OPEN_PATHS = {"/healthz", "/login", "/setup/{secret}"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def all_routes(app: FastAPI) -> list[tuple[str, set[str]]]:
    """Every route the app answers, read from its routing tree, so a route added anywhere (a new
    module, an app-level route) is found. FastAPI keeps included routers nested in `app.routes`
    (newer versions) or flattens them there (older ones); iter_route_contexts walks either."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = walk(app.routes) if walk else app.routes
    return [(route.path, set(route.methods)) for route in routes if getattr(route, "methods", None)]


def test_only_healthz_and_sign_in_are_open() -> None:
    public = [route.path for module in (auth_pages, system) for route in module.public.routes]
    assert set(public) == OPEN_PATHS


def test_the_route_list_sees_every_route_even_one_added_outside_the_features(
    runtime: Runtime,
) -> None:
    app = create_app(runtime)
    extra = APIRouter()
    extra.get("/added-later")(lambda: {})
    app.include_router(extra)
    paths = {path for path, _ in all_routes(app)}
    assert {"/added-later", "/", "/api/me", "/sources/{name}/poll", "/logs/sql.csv"} <= paths
    mounts = [route.path for route in app.routes if isinstance(route, Mount)]
    assert mounts == ["/static"]  # the only other thing served, and it is open by design


def test_every_route_but_healthz_and_sign_in_refuses_an_anonymous_request(
    runtime: Runtime, anonymous: TestClient
) -> None:
    routes = [(path, methods) for path, methods in all_routes(create_app(runtime))]
    assert len(routes) >= 70  # the whole app, not only the features' routers
    nobody = {"Authorization": "Bearer kbt_forged"}, {"Cookie": "kb_session=forged"}, {}
    checked = 0
    for path, methods in routes:
        if path in OPEN_PATHS:
            continue
        for method in methods - {"HEAD"}:
            for headers in nobody:
                for accept in ({}, {"Accept": "text/html"}, {"HX-Request": "true"}):
                    response = anonymous.request(method, concrete(path), headers=headers | accept)
                    if path.startswith("/api/") or path == "/metrics" or not accept:
                        assert response.status_code == 401, (method, path, headers, accept)
                        assert "Sign in first" in response.json()["detail"]
                    elif "HX-Request" in accept:
                        assert response.status_code == 401, (method, path)
                        assert response.headers["HX-Redirect"].startswith("/login?next=")
                    else:
                        assert response.status_code == 303, (method, path)
                        assert response.headers["location"].startswith("/login?next=")
            checked += 1
    assert checked >= 60
    assert anonymous.get("/healthz").json() == {"status": "ok"}


def state_changing_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) that can change something, but the sign-in and setup forms (which
    are used before a session exists and carry a double-submit token of their own)."""
    return [
        (method, path)
        for path, methods in all_routes(app)
        for method in sorted(methods - sessions.SAFE_METHODS)
        if path not in OPEN_PATHS
    ]


def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(
    runtime: Runtime, client: TestClient
) -> None:
    other = TestClient(create_app(runtime), follow_redirects=False)
    others_csrf = sign_in(other)  # a real token, of another session
    assert others_csrf != client.csrf
    routes = state_changing_routes(create_app(runtime))
    assert len(routes) >= 24
    wrong = ("", "forged", others_csrf, client.csrf[:-1], client.csrf + "x")
    for method, path in routes:
        url = concrete(path)
        for sent in wrong:
            as_form = client.request(method, url, data={"csrf_token": sent, "name": "x"})
            as_header = client.request(method, url, json={}, headers={"X-CSRF-Token": sent})
            for response in (as_form, as_header):
                assert response.status_code == 403, (method, path, sent, response.status_code)
                assert "security token" in response.text
        missing = client.request(method, url, json={"name": "x"})
        assert missing.status_code == 403, (method, path)
    assert client.get("/api/me").json()["username"] == ADMIN  # still signed in, nothing made
    assert users.list_api_tokens(runtime.state, ADMIN) == []


def test_the_right_csrf_token_is_accepted_as_a_form_field_or_a_header(client: TestClient) -> None:
    form = client.post("/account/tokens", data={"name": "a", "csrf_token": client.csrf})
    header = client.post(
        "/account/tokens", data={"name": "b"}, headers={"X-CSRF-Token": client.csrf}
    )
    assert form.status_code == header.status_code == 200
    assert "kbt_" in form.text and "kbt_" in header.text


def test_the_setup_form_refuses_a_missing_or_wrong_csrf_token(runtime: Runtime) -> None:
    link = users.ensure_setup_link(runtime.state, "http://127.0.0.1:8000")
    path = link.removeprefix("http://127.0.0.1:8000")
    fields = {"username": "root", "password": PASSWORD, "confirm": PASSWORD}
    with TestClient(create_app(runtime), follow_redirects=False) as browser:
        browser.get(path)  # sets the double-submit cookie
        for sent in ("", "forged"):
            response = browser.post(path, data={**fields, "csrf_token": sent})
            assert response.status_code == 400
            assert "setup form had expired" in response.text
        assert users.user_count(runtime.state) == 0


def test_the_login_form_refuses_a_wrong_csrf_token(runtime: Runtime, admin: users.UserInfo) -> None:
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        client.get("/login")
        for sent in ("forged", ""):
            response = client.post(
                "/login", data={"username": ADMIN, "password": PASSWORD, "csrf_token": sent}
            )
            assert response.status_code == 403
            assert "kb_session" not in client.cookies


def test_sign_in_is_also_limited_per_address_across_usernames(
    runtime: Runtime, admin: users.UserInfo
) -> None:
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]

        def attempt(username: str, password: str = "guess") -> int:  # noqa: S107
            data = {"username": username, "password": password, "csrf_token": csrf}
            return client.post("/login", data=data).status_code

        # Four tries per name stays under the per-name limit; the address limit (20) still bites.
        codes = [attempt(f"user{n // 4}") for n in range(throttle.LOGIN_FAILURES_PER_ADDRESS)]
        assert set(codes) == {401}
        assert attempt("someone-else") == 429
        assert attempt(ADMIN, PASSWORD) == 429


def test_a_browser_is_sent_to_the_sign_in_page_and_back(anonymous: TestClient) -> None:
    response = anonymous.get("/account?tab=1", headers={"Accept": "text/html"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Faccount%3Ftab%3D1"


def test_sign_in_sets_an_httponly_samesite_cookie_and_wrong_passwords_are_refused(
    runtime: Runtime, admin: users.UserInfo
) -> None:
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        with pytest.raises(AssertionError):
            sign_in(client, password="not the password")
        page = client.get("/login")
        assert "Wrong username or password" not in page.text
        sign_in(client)
        cookie = next(c for c in client.cookies.jar if c.name == "kb_session")
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert cookie.get_nonstandard_attr("SameSite", "").lower() == "lax"
        assert client.get("/api/me").json()["username"] == ADMIN


def test_wrong_password_keeps_the_username_and_says_what_failed(
    runtime: Runtime, admin: users.UserInfo
) -> None:
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        response = client.post(
            "/login", data={"username": ADMIN, "password": "nope", "csrf_token": csrf}
        )
        assert response.status_code == 401
        assert "Wrong username or password" in response.text
        assert f'value="{ADMIN}"' in response.text


def test_sign_in_is_rate_limited(runtime: Runtime, admin: users.UserInfo) -> None:
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        codes = [
            client.post(
                "/login", data={"username": ADMIN, "password": "guess", "csrf_token": csrf}
            ).status_code
            for _ in range(7)
        ]
        assert codes[:5] == [401] * 5
        assert codes[5:] == [429, 429]
        right = client.post(
            "/login", data={"username": ADMIN, "password": PASSWORD, "csrf_token": csrf}
        )
        assert right.status_code == 429, "the right password is refused too while throttled"
        assert "Too many failed sign-ins" in right.text


def test_the_login_form_refuses_a_missing_csrf_token(
    runtime: Runtime, admin: users.UserInfo
) -> None:
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        response = client.post("/login", data={"username": ADMIN, "password": PASSWORD})
        assert response.status_code == 403
        assert "kb_session" not in client.cookies


def test_forms_refuse_a_missing_or_wrong_csrf_token(client: TestClient) -> None:
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        response = client.post("/account/tokens", data={"name": "x"}, headers=headers)
        assert response.status_code == 403
        assert "security token" in response.json()["detail"] or "security token" in response.text
    accepted = client.post("/account/tokens", data={"name": "x", "csrf_token": client.csrf})
    assert accepted.status_code == 200
    assert re.search(r"kbt_[\w-]{20,}", accepted.text)


def test_an_api_token_works_without_csrf_and_a_revoked_one_stops(
    runtime: Runtime, admin: users.UserInfo
) -> None:
    token = users.create_api_token(runtime.state, ADMIN, "script")
    assert token.startswith("kbt_")
    with TestClient(create_app(runtime), follow_redirects=False) as script:
        headers = {"Authorization": f"Bearer {token}"}
        assert script.get("/api/me", headers=headers).json() == {
            "username": ADMIN,
            "is_admin": True,
            "via": "token",
            "scope": "read",
        }
        (listed,) = users.list_api_tokens(runtime.state, ADMIN)
        assert listed.last_used_at is not None
        users.revoke_api_token(runtime.state, ADMIN, listed.id)
        assert script.get("/api/me", headers=headers).status_code == 401


def test_sign_out_ends_the_session(client: TestClient) -> None:
    response = client.post("/logout", data={"csrf_token": client.csrf})
    assert response.status_code == 303
    assert client.get("/api/me").status_code == 401


def test_the_setup_link_creates_the_first_admin_once(runtime: Runtime) -> None:
    link = users.ensure_setup_link(runtime.state, "http://127.0.0.1:8000")
    assert link is not None
    path = link.removeprefix("http://127.0.0.1:8000")
    with TestClient(create_app(runtime), follow_redirects=False) as browser:
        form = browser.get(path)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)[1]
        short = browser.post(
            path,
            data={"username": "root", "password": "short", "confirm": "short", "csrf_token": csrf},
        )
        assert short.status_code == 400
        assert "too short" in short.text
        assert 'value="root"' in short.text
        made = browser.post(
            path,
            data={
                "username": "root",
                "password": PASSWORD,
                "confirm": PASSWORD,
                "csrf_token": csrf,
            },
        )
        assert made.status_code == 303
        assert browser.get("/api/me").json()["username"] == "root"
        assert browser.get(path).status_code == 410
    assert users.ensure_setup_link(runtime.state, "http://x") is None


def test_passwords_and_tokens_are_not_stored_in_plain_text(
    runtime: Runtime, admin: users.UserInfo, home
) -> None:
    token = users.create_api_token(runtime.state, ADMIN, "script")
    session, _ = users.start_session(runtime.state, admin.id)
    database = b"".join(path.read_bytes() for path in home.glob("state.db*"))  # and its WAL
    assert PASSWORD.encode() not in database
    assert token.encode() not in database
    assert session.encode() not in database  # a session cookie read from the file is no use
    assert b"$argon2id$" in database


def test_next_never_leaves_the_site(runtime: Runtime, admin: users.UserInfo) -> None:
    with TestClient(create_app(runtime), follow_redirects=False) as client:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)[1]
        response = client.post(
            "/login",
            data={
                "username": ADMIN,
                "password": PASSWORD,
                "csrf_token": csrf,
                "next": "//evil.example/",
            },
        )
        assert response.headers["location"] == "/"


def test_api_docs_are_served_behind_login(api: TestClient, anonymous: TestClient) -> None:
    assert anonymous.get("/api/openapi.json").status_code == 401
    schema = api.get("/api/openapi.json").json()
    assert "/api/me" in schema["paths"]
    docs = api.get("/api/docs")
    assert docs.status_code == 200
    assert "/static/swagger-ui/swagger-ui-bundle.js" in docs.text


def test_metrics_need_login_and_serve_prometheus_text(
    api: TestClient, anonymous: TestClient
) -> None:
    assert anonymous.get("/metrics").status_code == 401
    response = api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "kandji_bridge_jobs_running" in response.text


def test_the_schema_declares_the_error_answers_every_api_route_gives(
    api: TestClient, anonymous: TestClient
) -> None:
    # Found by schemathesis: 401, 404 and the app's own 422 body ({"detail": a sentence,
    # "errors": [...]}, not FastAPI's list) were answered but not in the schema.
    schema = api.get("/api/openapi.json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"400", "401", "403", "404", "422"} <= set(operation["responses"]), (
                method,
                path,
            )
    invalid = schema["components"]["schemas"]["InvalidRequest"]
    assert invalid["properties"]["detail"]["type"] == "string"
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    body = api.post(
        "/api/collections", content=b"\x00", headers={"Content-Type": "application/json"}
    )
    assert body.status_code == 422
    assert isinstance(body.json()["detail"], str) and isinstance(body.json()["errors"], list)
    assert set(anonymous.get("/api/sources").json()) == {"detail"}


def test_a_405_names_every_method_its_path_supports(api: TestClient) -> None:
    # Found by schemathesis: Starlette named only the first matching route's methods.
    for method, path, allowed in (
        ("PATCH", "/api/sources", "GET, POST"),
        ("PUT", "/api/sources/acme", "DELETE, GET, PATCH"),
        ("PUT", "/api/sources/verify", "POST"),
        ("PATCH", "/api/integrations/kandji", "GET, PUT"),
        ("PUT", "/api/mappings/x", "DELETE, GET, PATCH"),
        ("PATCH", "/api/collections", "GET, POST"),
        ("PATCH", "/sources/acme/remove", "GET, POST"),
    ):
        response = api.request(method, path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed, path
        assert response.json() == {"detail": "Method Not Allowed"}


def read_only_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) a `read` token may use: the pages and API reads, the SQL query."""
    found = []
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in walk(app.routes) if walk else app.routes:
        if not getattr(route, "methods", None) or route.path in OPEN_PATHS:
            continue
        endpoint = f"{route.endpoint.__module__}.{route.endpoint.__qualname__}"
        for method in sorted(route.methods - {"HEAD"}):
            if method in sessions.SAFE_METHODS or endpoint in sessions.READ_ONLY_ENDPOINTS:
                found.append((method, route.path))
    return found


def test_a_read_token_may_read_everything_and_change_nothing(
    runtime: Runtime, admin: users.UserInfo
) -> None:
    app = create_app(runtime)
    read = users.create_api_token(runtime.state, ADMIN, "grafana")  # read unless asked for more
    changes = [route for route in state_changing_routes(app) if route not in read_only_routes(app)]
    reads = read_only_routes(app)
    assert len(changes) >= 23 and len(reads) >= 40
    assert ("POST", "/api/logs/query") in reads and ("GET", "/metrics") in reads
    with TestClient(app, headers={"Authorization": f"Bearer {read}"}) as script:
        for method, path in changes:
            for accept in ({}, {"Accept": "text/html"}):
                response = script.request(
                    method, concrete(path), json={"name": "x"}, headers=accept
                )
                assert response.status_code == 403, (method, path, response.status_code)
                assert "This API token may only read" in response.text, (method, path)
                assert "--scope admin" in response.text
        for method, path in reads:
            response = script.request(method, concrete(path), json={"sql": "SELECT 1"})
            assert response.status_code not in (401, 403), (method, path, response.text)
        assert script.get("/metrics").status_code == 200
        query = script.post("/api/logs/query", json={"sql": "SELECT count() FROM kandji_logs"})
        assert query.status_code == 200, query.text
        assert script.get("/api/me").json()["scope"] == "read"
    assert [token.name for token in users.list_api_tokens(runtime.state, ADMIN)] == ["grafana"]
    assert users.list_users(runtime.state) == [admin]


def test_only_an_admin_token_makes_tokens_and_changes(
    runtime: Runtime, admin: users.UserInfo
) -> None:
    read = users.create_api_token(runtime.state, ADMIN, "grafana", users.READ)
    made = users.create_api_token(runtime.state, ADMIN, "terraform", users.ADMIN)
    app = create_app(runtime)
    with TestClient(app, follow_redirects=False) as script:
        for token, status in ((read, 403), (made, 200)):
            response = script.post(
                "/account/tokens",
                data={"name": "minted", "scope": "admin"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert response.status_code == status, response.text
        collection = script.post(
            "/api/collections",
            json={"name": "ITAM", "fields": [{"label": "Serial", "type": "text", "unique": True}]},
            headers={"Authorization": f"Bearer {made}"},
        )
        assert collection.status_code == 201, collection.text
    scopes = {token.name: token.scope for token in users.list_api_tokens(runtime.state, ADMIN)}
    assert scopes == {"grafana": "read", "terraform": "admin", "minted": "admin"}


def test_the_account_page_makes_read_tokens_unless_admin_is_chosen(
    runtime: Runtime, client: TestClient
) -> None:
    page = client.get("/account")
    assert '<option value="read" selected>' in page.text
    client.post("/account/tokens", data={"name": "dash", "csrf_token": client.csrf})
    client.post(
        "/account/tokens", data={"name": "ops", "scope": "admin", "csrf_token": client.csrf}
    )
    wrong = client.post(
        "/account/tokens", data={"name": "x", "scope": "root", "csrf_token": client.csrf}
    )
    assert wrong.status_code == 400 and "scope is read or admin" in wrong.text
    scopes = {token.name: token.scope for token in users.list_api_tokens(runtime.state, ADMIN)}
    assert scopes == {"dash": "read", "ops": "admin"}
    assert "<td>admin</td>" in client.get("/account").text
