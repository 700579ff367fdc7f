"""ULIDs as Kandji's audit events carry them: 48-bit ms time + 80 random bits, Crockford base32."""

import base64

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TO_CROCKFORD = str.maketrans(_RFC4648, _CROCKFORD)
# Python's int(text, 32) reads the digits 0-9a-v, so map each Crockford letter to its value's digit.
_TO_INT_DIGITS = str.maketrans(_CROCKFORD, "0123456789abcdefghijklmnopqrstuv")


def encode(ms: int, randomness: int) -> str:
    """The 26-character ULID; base64's b32 is C code, much faster than a per-character loop."""
    value = (ms << 80) | randomness
    # 26 characters hold 130 bits; shifting by 6 into 17 bytes aligns them to b32's 5-bit groups.
    text = base64.b32encode((value << 6).to_bytes(17, "big")).decode("ascii")
    return text[:26].translate(_TO_CROCKFORD)


def randomness(ulid: str) -> int:
    """The 80 random bits of a ULID."""
    return int(ulid[10:].translate(_TO_INT_DIGITS), 32)


def timestamp_ms(ulid: str) -> int:
    return int(ulid[:10].translate(_TO_INT_DIGITS), 32)


def lowest(ms: int) -> str:
    """The smallest ULID of that millisecond: a bound for searching ids by time."""
    return encode(ms, 0)
