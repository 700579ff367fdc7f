"""The base error: every failure a user can cause is a BridgeError with one clear sentence."""


class BridgeError(Exception):
    """A failure the user can act on. str(error) is the sentence shown to them."""

    def __init__(self, message: str, in_web: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The sentence for the web UI when `message` names a CLI command (the UI has a button).
        self.in_web = in_web

    def __str__(self) -> str:
        return self.message


class ConfigError(BridgeError):
    """The configuration (a flag, an environment variable, the home dir) is unusable."""


class NotFound(BridgeError):
    """A named thing (a source, a collection, a mapping) does not exist."""


class AlreadyExists(BridgeError):
    """A thing with that name exists already."""


class UsageError(BridgeError):
    """The command was called wrongly (a missing or conflicting option): exit code 2."""


def web_message(exc: BridgeError) -> str:
    """The sentence the web UI and REST API show for `exc`."""
    return getattr(exc, "in_web", None) or str(exc)
