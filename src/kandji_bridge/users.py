"""Who may use the web UI and the REST API: accounts, browser sessions, API tokens, the setup link.

Passwords are hashed with argon2id. Session ids, API tokens and setup links are random secrets
handed out once; only their SHA-256 is stored, so a copy of the state DB lets no one in.
"""

import contextlib
import functools
import hashlib
import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kandji_bridge.config import Settings, ensure_home
from kandji_bridge.db.models import ApiToken, SetupLink, User, WebSession, utcnow
from kandji_bridge.db.state import StateDB
from kandji_bridge.errors import AlreadyExists, BridgeError, NotFound

USERNAME_MAX_LENGTH = 64
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024  # argon2 takes any length; this only stops absurd request bodies
SESSION_LIFETIME = timedelta(days=7)
SETUP_LINK_LIFETIME = timedelta(hours=24)
# The setup link also sits in the home, readable by its owner only: an admin who lost the terminal
# that printed it finds it there.
SETUP_LINK_FILE = "setup-link.txt"
API_TOKEN_PREFIX = "kbt_"  # noqa: S105 - a marker, not a secret
_USERNAME = re.compile(r"[\w.@+-]+")
# What an API token may do: `read` the pages, queries and /metrics, or, as `admin`, also change
# anything (sources, mappings, collections, users, tokens). Browser sessions are admins.
READ = "read"
ADMIN = "admin"
SCOPES = (READ, ADMIN)

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a wrong name costs as long as a wrong
    password. Made on first use: hashing takes argon2's 64 MiB and a fraction of a second, which
    every command would otherwise pay at import."""
    return _hasher.hash("kandji-bridge: no such user")


class InvalidUser(BridgeError):
    """A username or password that is not acceptable."""


@dataclass(frozen=True)
class UserInfo:
    id: str
    username: str
    is_admin: bool
    created_at: datetime
    last_login_at: datetime | None


@dataclass(frozen=True)
class SessionInfo:
    user: UserInfo
    csrf_token: str


@dataclass(frozen=True)
class ApiTokenInfo:
    id: str
    name: str
    prefix: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class TokenUser:
    """Whom an API token acts as, and what it may do."""

    user: UserInfo
    scope: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_username(username: str) -> str:
    """The one spelling of a username, for accounts, sign-in and its throttle alike: Unicode
    NFKC (a full-width or ligature letter is the plain one) without surrounding whitespace."""
    return unicodedata.normalize("NFKC", username).strip()


def validate_username(username: str) -> str:
    username = normalize_username(username)
    if not username:
        raise InvalidUser("The username is empty; choose one, for example admin.")
    if len(username) > USERNAME_MAX_LENGTH:
        raise InvalidUser(
            f"The username is too long; use at most {USERNAME_MAX_LENGTH} characters."
        )
    if not _USERNAME.fullmatch(username):
        raise InvalidUser(
            "The username may contain only letters, digits and . @ + - _; choose another."
        )
    return username


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidUser(
            f"The password is too short; use at least {MIN_PASSWORD_LENGTH} characters."
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidUser(
            f"The password is too long; use at most {MAX_PASSWORD_LENGTH} characters."
        )
    return password


def create_user(state: StateDB, username: str, password: str) -> UserInfo:
    username = validate_username(username)
    user = User(username=username, password_hash=_hasher.hash(validate_password(password)))
    try:
        with state.session() as session:
            if session.scalar(select(User.id).where(User.username == username)):
                raise _taken(username)
            session.add(user)
    except IntegrityError:
        raise _taken(username) from None
    _forget_setup_link(state.settings)  # its link no longer creates anyone
    return _info(user)


def set_password(state: StateDB, username: str, password: str) -> None:
    new_hash = _hasher.hash(validate_password(password))
    with state.session() as session:
        user = _find(session, username)
        user.password_hash = new_hash
        # Every browser signed in with the old password is signed out.
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))


def list_users(state: StateDB) -> list[UserInfo]:
    with state.session() as session:
        return [_info(user) for user in session.scalars(select(User).order_by(User.username))]


def user_count(state: StateDB) -> int:
    with state.session() as session:
        return session.scalar(select(func.count()).select_from(User)) or 0


def authenticate(state: StateDB, username: str, password: str) -> UserInfo | None:
    """The user when the password is right, else None (which of the two was wrong stays unsaid)."""
    with state.session() as session:
        user = session.scalar(select(User).where(User.username == normalize_username(username)))
        if user is None:
            _verify(_dummy_hash(), password)
            return None
        if not _verify(user.password_hash, password):
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            user.password_hash = _hasher.hash(password)
        user.last_login_at = utcnow()
        return _info(user)


def start_session(state: StateDB, user_id: str) -> tuple[str, str]:
    """A new browser session: (the cookie's secret, the session's CSRF token)."""
    secret, csrf_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with state.session() as session:
        session.execute(delete(WebSession).where(WebSession.expires_at < now))
        session.add(
            WebSession(
                id_hash=digest(secret),
                user_id=user_id,
                csrf_token=csrf_token,
                expires_at=now + SESSION_LIFETIME,
            )
        )
    return secret, csrf_token


def session_user(state: StateDB, secret: str) -> SessionInfo | None:
    with state.session() as session:
        row = session.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.id_hash == digest(secret), WebSession.expires_at > utcnow())
        ).first()
        if row is None:
            return None
        web_session, user = row
        return SessionInfo(_info(user), web_session.csrf_token)


def end_session(state: StateDB, secret: str) -> None:
    with state.session() as session:
        session.execute(delete(WebSession).where(WebSession.id_hash == digest(secret)))


def create_api_token(state: StateDB, username: str, name: str, scope: str = READ) -> str:
    """A new API token for scripts; returned once, only its digest is kept."""
    name = name.strip()
    if not name or len(name) > 64:
        raise InvalidUser("Name the token in 1 to 64 characters, for example the script using it.")
    if scope not in SCOPES:
        raise InvalidUser(f"A token's scope is read or admin, not {scope!r}; choose one of them.")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with state.session() as session:
        user = _find(session, username)
        session.add(
            ApiToken(
                user_id=user.id,
                name=name,
                token_hash=digest(token),
                prefix=token[: len(API_TOKEN_PREFIX) + 4],
                scope=scope,
            )
        )
    return token


def list_api_tokens(state: StateDB, username: str) -> list[ApiTokenInfo]:
    with state.session() as session:
        user = _find(session, username)
        tokens = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at)
        )
        return [
            ApiTokenInfo(
                token.id,
                token.name,
                token.prefix,
                token.scope,
                token.created_at,
                token.last_used_at,
            )
            for token in tokens
        ]


def revoke_api_token(state: StateDB, username: str, token_id: str) -> None:
    with state.session() as session:
        user = _find(session, username)
        gone = session.execute(
            delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
        )
        if not gone.rowcount:
            raise NotFound("No such API token; it may have been revoked already.")


def token_user(state: StateDB, token: str) -> TokenUser | None:
    if not token.startswith(API_TOKEN_PREFIX):
        return None
    with state.session() as session:
        row = session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(ApiToken.token_hash == digest(token))
        ).first()
        if row is None:
            return None
        api_token, user = row
        api_token.last_used_at = utcnow()
        return TokenUser(_info(user), api_token.scope)


def ensure_setup_link(state: StateDB, base_url: str) -> str | None:
    """While no account exists: a fresh one-time link to create the first admin (older ones die),
    also written to the home's setup-link file."""
    if user_count(state):
        _forget_setup_link(state.settings)
        return None
    secret = secrets.token_urlsafe(32)
    with state.session() as session:
        session.execute(delete(SetupLink))
        session.add(SetupLink(token_hash=digest(secret), expires_at=utcnow() + SETUP_LINK_LIFETIME))
    link = f"{base_url.rstrip('/')}/setup/{secret}"
    _keep_setup_link(state.settings, link)
    return link


def renew_setup_link(state: StateDB, base_url: str) -> None:
    """While no account exists and no setup link works any more (used in a failed setup, or
    expired): a new one in the home's setup-link file. A link that still works is kept."""
    with state.session() as session:
        alive = session.scalar(
            select(func.count())
            .select_from(SetupLink)
            .where(SetupLink.used_at.is_(None), SetupLink.expires_at > utcnow())
        )
    if not alive:
        ensure_setup_link(state, base_url)


def setup_link_file(settings: Settings) -> Path:
    return settings.home / SETUP_LINK_FILE


def _keep_setup_link(settings: Settings, link: str) -> None:
    path = ensure_home(settings) / SETUP_LINK_FILE
    partial = path.with_name(f".{SETUP_LINK_FILE}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(link + "\n")
    os.replace(partial, path)


def _forget_setup_link(settings: Settings) -> None:
    with contextlib.suppress(FileNotFoundError):
        setup_link_file(settings).unlink()


def setup_link_valid(state: StateDB, secret: str) -> bool:
    with state.session() as session:
        link = session.get(SetupLink, digest(secret))
        return link is not None and link.used_at is None and link.expires_at > utcnow()


def use_setup_link(state: StateDB, secret: str, username: str, password: str) -> UserInfo:
    """Create the first admin through the setup link; the link then stops working."""
    username, password = validate_username(username), validate_password(password)
    with state.session() as session:
        used = session.execute(
            update(SetupLink)
            .where(
                SetupLink.token_hash == digest(secret),
                SetupLink.used_at.is_(None),
                SetupLink.expires_at > utcnow(),
            )
            .values(used_at=utcnow())
        )
        if not used.rowcount or session.scalar(select(func.count()).select_from(User)):
            raise InvalidUser(
                "This setup link has been used or has expired; sign in if an account exists, "
                f"or open the newest setup link, in {setup_link_file(state.settings)}."
            )
        user = User(username=username, password_hash=_hasher.hash(password))
        session.add(user)
    _forget_setup_link(state.settings)
    return _info(user)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _find(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == normalize_username(username)))
    if user is None:
        raise NotFound(f"No user is called {username!r}; `kandji-bridge user list` shows them.")
    return user


def _taken(username: str) -> AlreadyExists:
    return AlreadyExists(f"A user called {username!r} exists already; choose another name.")


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.username, user.is_admin, user.created_at, user.last_login_at)
