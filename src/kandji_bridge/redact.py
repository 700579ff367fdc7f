"""Keep tokens out of every output: known secrets are scrubbed from logs and errors."""

import logging

_secrets: set[str] = set()
MASK = "[redacted]"


def remember(secret: str) -> None:
    """Register a secret (a Kandji token) so that it never leaves the process in text."""
    if len(secret) >= 4:
        _secrets.add(secret)


def scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class ScrubFilter(logging.Filter):
    """A logging filter that renders each record and removes any remembered secret from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = scrub(record.getMessage())
            record.args = None
        return True


def install_log_filter() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
