"""The account API: who a request is signed in as."""

from fastapi import APIRouter

from kandji_bridge.web.auth.schemas import Me
from kandji_bridge.web.auth.sessions import CurrentUser

api = APIRouter(tags=["account"])


@api.get("/me", summary="Who I am")
def me(principal: CurrentUser) -> Me:
    """Who this request is signed in as, and what it may do (`read` or `admin`)."""
    user = principal.user
    return Me(
        username=user.username, is_admin=user.is_admin, via=principal.via, scope=principal.scope
    )
