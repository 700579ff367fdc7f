"""Login for every page and API route: browser sessions with CSRF tokens and API tokens
(`sessions`), the sign-in throttle (`throttle`), the sign-in, setup and account pages (`pages`)
and the account API (`api`). A route asks for its user with `CurrentUser`, and reads what `serve`
holds open with `runtime_of`."""

from kandji_bridge.web.auth.sessions import CurrentUser, Principal, runtime_of

__all__ = ["CurrentUser", "Principal", "runtime_of"]
