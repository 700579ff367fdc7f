"""ULIDs as Kandji's audit events carry them: 48-bit ms time + 80 random bits, Crockford base32."""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> 2 characters
# Python's int(text, 32) reads the digits 0-9a-v, so map each Crockford letter to its value's digit.
_TO_INT_DIGITS = str.maketrans(_CROCKFORD, "0123456789abcdefghijklmnopqrstuv")


def encode(ms: int, randomness: int) -> str:
    """The 26-character ULID, two characters per table lookup (fast: a million are minted)."""
    p = _PAIRS
    r = randomness
    return (
        p[ms >> 40] + p[(ms >> 30) & 1023] + p[(ms >> 20) & 1023] + p[(ms >> 10) & 1023]
        + p[ms & 1023] + p[r >> 70] + p[(r >> 60) & 1023] + p[(r >> 50) & 1023]
        + p[(r >> 40) & 1023] + p[(r >> 30) & 1023] + p[(r >> 20) & 1023] + p[(r >> 10) & 1023]
        + p[r & 1023]
    )  # fmt: skip


def randomness(ulid: str) -> int:
    """The 80 random bits of a ULID."""
    return int(ulid[10:].translate(_TO_INT_DIGITS), 32)


def timestamp_ms(ulid: str) -> int:
    return int(ulid[:10].translate(_TO_INT_DIGITS), 32)


def lowest(ms: int) -> str:
    """The smallest ULID of that millisecond: a bound for searching ids by time."""
    return encode(ms, 0)
