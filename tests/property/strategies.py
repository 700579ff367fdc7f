"""Hypothesis strategies for what Kandji could send: JSON as the audit page parser reads it.

Audit pages are read with the standard library's JSON decoder, so an event may hold what a strict
parser would refuse: NaN and Infinity, integers beyond 64 bits, and lone surrogates written as
`\\ud800` escapes. Device payloads are read with orjson, which refuses all three.
"""

import string
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from kandji_bridge.logs.normalize import DST_IP_KEYS, SRC_IP_KEYS

# Text as a UTF-8 body decodes to (no surrogates), and text with lone surrogates as escapes make.
clean_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
# Lone surrogates are rare among arbitrary characters; a few fixed ones make them common.
lone_surrogates = st.sampled_from(["\ud800", "x\udfff", "\udc00\u00e9", "\ud83d"])
any_text = st.text(st.characters(exclude_categories=[]), max_size=40) | lone_surrogates
huge_text = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["x", "é", "😀", "\u0000"]),
    st.integers(10_000, 200_000),
)


def json_scalars(*, strict: bool) -> st.SearchStrategy:
    """JSON scalars; `strict` (orjson) leaves out NaN, Infinity, 64+ bit integers, surrogates."""
    if strict:
        numbers = st.integers(-(2**63), 2**64 - 1) | st.floats(
            allow_nan=False, allow_infinity=False
        )
        return st.none() | st.booleans() | numbers | clean_text
    return st.none() | st.booleans() | st.integers() | st.floats() | any_text


def json_values(*, strict: bool) -> st.SearchStrategy:
    return st.recursive(
        json_scalars(strict=strict),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=4),
        max_leaves=12,
    )


def _iso(moment: datetime, sep: str, offset_minutes: int, spec: str) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    return moment.replace(tzinfo=UTC).astimezone(zone).isoformat(sep=sep, timespec=spec)


timestamps = st.one_of(
    # Kandji's own forms, any offset, any precision
    st.builds(
        _iso,
        st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
        st.sampled_from(["T", " "]),
        st.integers(-23 * 60 - 59, 23 * 60 + 59),
        st.sampled_from(["seconds", "milliseconds", "microseconds"]),
    ),
    # the edges of what a datetime and a ClickHouse DateTime hold, with offsets that cross them
    st.builds(
        lambda moment, minutes: (
            moment.isoformat()
            + (
                "Z"
                if minutes == 0
                else f"{'+' if minutes > 0 else '-'}{abs(minutes) // 60:02}:{abs(minutes) % 60:02}"
            )
        ),
        st.sampled_from(
            [
                datetime(1, 1, 1),
                datetime(1969, 12, 31, 23, 59, 59),
                datetime(1970, 1, 1),
                datetime(2105, 12, 31, 23, 59, 59),
                datetime(2106, 2, 7, 6, 28, 16),
                datetime(9999, 12, 31, 23, 59, 59),
            ]
        ),
        st.sampled_from([0, 60, -60, 23 * 60 + 59, -(23 * 60 + 59)]),
    ),
    st.sampled_from(
        [
            "",
            "now",
            "2024-13-01T00:00:00Z",
            "2024-02-30",
            "2024-01-01T25:00:00",
            "1700000000",
            "2024-01-01T00:00:00+24:00",
            "T",
            "\u0000",
        ]
    ),
    json_scalars(strict=False),
)

ip_like = st.one_of(
    st.ip_addresses().map(str),
    st.ip_addresses(v=4).map(lambda ip: f"{ip}:{443}"),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]:8443"),
    st.ip_addresses(v=4).map(lambda ip: f"::ffff:{ip}"),
    st.sampled_from(
        [
            "999.1.1.1",
            "1.2.3",
            "fe80::1%eth0",
            "[::1",
            "::1]:80",
            "1.2.3.4, 5.6.7.8",
            "01.02.03.04",
            "0x7f.1",
            "localhost",
            ":",
            "[]",
            "a" * 100,
        ]
    ),
    st.text(string.hexdigits + ".:[]%, ", max_size=50),
    st.lists(st.ip_addresses().map(str) | any_text, max_size=3),
    json_scalars(strict=False),
)

event_ids = st.one_of(
    st.text(string.ascii_uppercase + string.digits, min_size=26, max_size=26),
    st.text(min_size=1, max_size=140),
    st.just(""),
    json_scalars(strict=False),
)

_FIELDS = ("action", "actor_id", "actor_type", "target_id", "target_type", "target_component")


def _how(draw: st.DrawFn) -> str:
    """Whether a field is faithful (the simplest, so what hypothesis shrinks to), odd or missing."""
    return draw(st.sampled_from(["good", "good", "good", "odd", "missing"]))


@st.composite
def audit_events(draw: st.DrawFn) -> dict:
    """An audit event, sometimes faithful, often not: fields missing, odd-typed, huge, unicode."""
    event: dict = {}
    for name, good, odd in (
        (
            "id",
            st.text(string.ascii_uppercase + string.digits, min_size=26, max_size=26),
            event_ids,
        ),
        ("occurred_at", timestamps.filter(lambda t: isinstance(t, str)), timestamps),
    ):
        how = _how(draw)
        if how != "missing":
            event[name] = draw(good if how == "good" else odd)
    for name in _FIELDS:
        how = _how(draw)
        if how != "missing":
            event[name] = draw(any_text if how == "good" else json_values(strict=False) | huge_text)
    for name in ("new_state", "metadata"):
        how = _how(draw)
        if how == "missing":
            continue
        obj = draw(st.dictionaries(clean_text, json_values(strict=False), max_size=5))
        for key in draw(st.lists(st.sampled_from(SRC_IP_KEYS + DST_IP_KEYS), max_size=3)):
            obj[key] = draw(ip_like)
        event[name] = obj if how == "good" else draw(json_values(strict=False))
    extra = draw(st.dictionaries(clean_text, json_values(strict=False), max_size=2))
    return {**extra, **event}


# Anything a JSON array of results could hold: mostly events, sometimes no object at all.
any_event = audit_events() | json_values(strict=False)
