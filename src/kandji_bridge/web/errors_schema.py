"""The error answers every /api/ route can give, as the OpenAPI schema declares them.

The app's handlers turn any BridgeError into 400/404/409, a missing login into 401, a refused
CSRF token into 403 and a malformed request into 422, always with a one-sentence `detail`; the
schema says so, so that a client (or schemathesis) can rely on every status code it gets.
"""

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    detail: str = Field(description="What went wrong and what to do, in one sentence.")


class InvalidRequest(Problem):
    errors: list[dict[str, Any]] = Field(
        description="Each invalid part of the request: its location (`loc`), `msg` and `type`."
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The request cannot be carried out as it is."},
    401: {"model": Problem, "description": "Not signed in: no valid session or API token."},
    403: {"model": Problem, "description": "A browser session's CSRF token is missing or wrong."},
    404: {"model": Problem, "description": "What the path names does not exist."},
    409: {"model": Problem, "description": "Something of that name already exists."},
    422: {"model": InvalidRequest, "description": "The request does not fit its schema."},
}
