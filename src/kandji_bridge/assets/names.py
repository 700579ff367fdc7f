"""Names of collections, and of what builds on them: what a user types in commands, so plain."""

import re

from kandji_bridge.errors import BridgeError

NAME_MAX_LENGTH = 64  # the columns' size
_NAME_CHARACTER = re.compile(r"[\w .-]")
_ALLOWED = "letters, digits, spaces, dashes (-), underscores (_) and dots (.)"


class InvalidName(BridgeError):
    """A name that cannot be used."""


def check_name(what: str, name: str) -> str:
    """The name without surrounding spaces, or InvalidName saying what to change.

    `what` is how the message starts: "The collection name".
    """
    name = name.strip()
    if not name:
        raise InvalidName(f"{what} is empty; use 1 to {NAME_MAX_LENGTH} {_ALLOWED}.")
    if len(name) > NAME_MAX_LENGTH:
        raise InvalidName(f"{what} is {len(name)} characters long; use at most {NAME_MAX_LENGTH}.")
    bad = sorted({character for character in name if not _NAME_CHARACTER.fullmatch(character)})
    if bad:
        shown = " ".join(repr(character) for character in bad)
        raise InvalidName(f"{what} contains {shown}; use only {_ALLOWED}.")
    return name
