"""Kandji tokens encrypted at rest (Fernet), with the key from the environment or a 0600 key file.

The key is `KANDJI_BRIDGE_SECRET_KEY` when set: a Fernet key (what `Fernet.generate_key()` prints,
44 URL-safe base64 characters) is used as is; any other value is a passphrase of at least
16 characters, stretched into a key with scrypt. Otherwise the key is `<home>/secret.key`, created
on first use. Losing the key loses the stored tokens (not the data): the sources must be re-added.
"""

import base64
import binascii
import contextlib
import functools
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kandji_bridge.config import ENV_SECRET_KEY, Settings, ensure_home
from kandji_bridge.errors import ConfigError

MIN_PASSPHRASE_LENGTH = 16
# The passphrase is a machine secret, not a password shared between sites, so a fixed salt is
# enough; a per-installation salt would have to live beside the data and add nothing.
_SCRYPT_SALT = b"kandji-bridge secret key v1"
_GENERATE_HINT = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


def encrypt_token(settings: Settings, token: str) -> str:
    return _fernet(settings).encrypt(token.encode()).decode("ascii")


def decrypt_token(settings: Settings, ciphertext: str, what: str = "A stored token") -> str:
    """The plain token; ConfigError when it was encrypted under another key. `what` names it."""
    try:
        return _fernet(settings).decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise ConfigError(
            f"{what} was encrypted with a different secret key than {_key_origin(settings)}; "
            f"restore the key file or {ENV_SECRET_KEY} used when it was saved, "
            "or remove the source and add it again."
        ) from exc


def mask_token(token: str | None) -> str:
    """What to show instead of a token.

    Nothing of the token, not even its last characters or its length: Kandji tokens are only
    useful whole, so a hint helps nobody tell two apart, while any part shown is a part leaked
    into terminals, screenshots and logs.
    """
    return "********" if token else "(not set)"


def _key_origin(settings: Settings) -> str:
    if settings.secret_key:
        return f"the one in {ENV_SECRET_KEY}"
    return f"the key file {settings.secret_key_file}"


def _fernet(settings: Settings) -> Fernet:
    if settings.secret_key:
        return Fernet(_key_from_setting(settings.secret_key))
    return Fernet(_key_from_file(settings))


@functools.lru_cache(maxsize=8)
def _key_from_setting(value: str) -> bytes:
    if _is_fernet_key(value):
        return value.encode("ascii")
    if len(value) < MIN_PASSPHRASE_LENGTH:
        raise ConfigError(
            f"{ENV_SECRET_KEY} is too short ({len(value)} characters); use a passphrase of at "
            f"least {MIN_PASSPHRASE_LENGTH} characters, or a key made by: {_GENERATE_HINT}"
        )
    # scrypt at n=2**15 costs ~32 MB and a fraction of a second: once per process (cached).
    kdf = Scrypt(salt=_SCRYPT_SALT, length=32, n=2**15, r=8, p=1)
    return base64.urlsafe_b64encode(kdf.derive(value.encode()))


def _is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32 and len(value) == 44
    except (binascii.Error, UnicodeError, ValueError):
        return False


def _key_from_file(settings: Settings) -> bytes:
    path = settings.secret_key_file
    if not path.exists():
        ensure_home(settings)
        _create_key_file(path)
    try:
        mode = path.stat().st_mode
        key = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"Cannot read the key file {path} ({exc}); make it readable by this user only "
            f"(chmod 600), or set {ENV_SECRET_KEY}."
        ) from exc
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"The key file {path} can be read by other users; run `chmod 600 {path}`."
        )
    if not _is_fernet_key(key):
        raise ConfigError(
            f"The key file {path} does not hold a valid key; restore it from a backup "
            f"(stored tokens can only be read with the original), or set {ENV_SECRET_KEY}."
        )
    return key.encode("ascii")


def _create_key_file(path: Path) -> None:
    """Write a new key, owner-only from its first byte, and publish it atomically.

    The key is written to a private temporary file, then hard-linked into place: a link never
    replaces an existing file, so when two processes race, both end up using the winner's key,
    and nobody ever reads a half-written file.
    """
    temporary = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(Fernet.generate_key() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        # When another process won the race, its key is the key.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the key file {path} ({exc.strerror}); make the home folder "
            f"writable by this user, or set {ENV_SECRET_KEY}."
        ) from exc
    finally:
        temporary.unlink(missing_ok=True)
