"""The account API's bodies."""

from pydantic import BaseModel


class Me(BaseModel):
    username: str
    is_admin: bool
    via: str
    scope: str
