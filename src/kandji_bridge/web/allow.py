"""The Allow header of a 405 answer: every method the path supports, not just one route's.

Starlette answers 405 from the first route whose path matches and names only that route's
methods, so `OPTIONS /api/sources` said `Allow: GET` although POST works there too (found by
schemathesis). Where a literal path and a template both match (`/api/sources/verify` and
`/api/sources/{name}`), the literal one is the resource meant.
"""

import re

import fastapi.routing
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.routing import compile_path


def route_methods(app: FastAPI) -> list[tuple[str, set[str]]]:
    """(path template, methods) of every route. FastAPI keeps included routers nested in
    `app.routes` (newer versions, walked by iter_route_contexts) or flattens them there."""
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    routes = walk(app.routes) if walk else app.routes
    return [(r.path, set(r.methods)) for r in routes if getattr(r, "methods", None)]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    patterns: list[tuple[re.Pattern[str], int, set[str]]] = getattr(app.state, "allow", None)
    if patterns is None:
        patterns = [(compile_path(t)[0], t.count("{"), m) for t, m in route_methods(app)]
        app.state.allow = patterns
    matches = [(params, methods) for regex, params, methods in patterns if regex.match(path)]
    if not matches:
        return []
    fewest = min(params for params, _ in matches)
    return sorted(set().union(*(methods for params, methods in matches if params == fewest)))


def add_allow_header(request: Request, exc: HTTPException) -> None:
    """On a 405, name in Allow every method the path supports (web/app.py's handler calls it)."""
    if exc.status_code == 405:
        allowed = allowed_methods(request.app, request.url.path)
        if allowed:
            exc.headers = {**(exc.headers or {}), "Allow": ", ".join(allowed)}
