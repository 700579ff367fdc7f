"""Jinja2 templates and the one way pages are rendered, with the signed-in user and CSRF token."""

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=TEMPLATES_DIR)

FormErrors = dict[str, str]  # field name -> one sentence; "" for the form as a whole


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page. Templates see `principal` (who is signed in, if anyone) and `csrf_token`."""
    principal = getattr(request.state, "principal", None)
    values = {
        "principal": principal,
        "csrf_token": principal.csrf_token if principal else "",
        "errors": {},
        "values": {},
    }
    values.update(context or {})
    return templates.TemplateResponse(request, name, values, status_code=status_code)
