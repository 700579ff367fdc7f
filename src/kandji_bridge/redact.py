"""Keep tokens out of every output: known secrets are scrubbed from logs and errors.

A server (or a proxy) may echo a token back in forms other than the one sent: without `Bearer `,
URL-encoded, HTML- or JSON-escaped, or base64-encoded inside a Basic credential. Each secret is
scrubbed in all of those forms.
"""

import base64
import html
import json
import logging
from urllib.parse import quote, quote_plus

_secrets: set[str] = set()
MASK = "[redacted]"
MIN_SECRET = 4  # shorter strings would mask ordinary words
MIN_BASE64_TOKEN = 8  # base64 fragments of shorter secrets are too short to be told apart


def forms(secret: str) -> set[str]:
    """The texts `secret` may appear as when a server echoes it back."""
    found = {secret, quote(secret, safe=""), quote_plus(secret), html.escape(secret)}
    found.add(json.dumps(secret)[1:-1])
    if len(secret) >= MIN_BASE64_TOKEN:
        found.update(_base64_fragments(secret.encode()))
    return {form for form in found if len(form) >= MIN_SECRET}


def _base64_fragments(secret: bytes) -> set[str]:
    """The base64 characters that depend on `secret` alone, at each of the three alignments it
    can have inside a longer base64 text (`user:TOKEN` in a Basic credential, say)."""
    fragments = set()
    for pad in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(b"\0" * pad + secret).decode()
            start = -(-8 * pad // 6)  # the first character with no padding bits in it
            end = 8 * (pad + len(secret)) // 6  # past the last one holding only secret bits
            fragments.add(text[start:end])
    return fragments


class Scrubber:
    """Removes a fixed set of secrets, in every form, from text."""

    def __init__(self, *secrets: str) -> None:
        found: set[str] = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET:
                found |= forms(secret)
        # Longest first: a form that contains another is masked whole.
        self._forms = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


_scrubber = Scrubber()


def remember(secret: str) -> None:
    """Register a secret (a Kandji token) so that it never leaves the process in text."""
    global _scrubber
    if len(secret) >= MIN_SECRET and secret not in _secrets:
        _secrets.add(secret)
        _scrubber = Scrubber(*_secrets)


def scrub(text: str) -> str:
    return _scrubber(text) if _secrets else text


class ScrubFilter(logging.Filter):
    """A logging filter that renders each record (its traceback too) and removes any remembered
    secret from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = scrub(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = scrub(record.exc_text)
            if record.stack_info:
                record.stack_info = scrub(record.stack_info)
        return True


def install_log_filter() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
