"""geoip2fast's loaded data in compact arrays: the same lookups in about a third of the memory.

geoip2fast unpickles its networks into Python lists of ints (1.4 million networks, IPv4 and IPv6,
country and ASN): about 115 MB. Its lookups only index those lists and bisect them, so typed arrays
answer them the same: first addresses as 32-bit values (IPv4 chunks) or 64-bit halves (IPv6
chunks), ids and prefix lengths as bytes or shorts. About 40 MB stays resident.

The lists are geoip2fast's module globals (version 1.2.x), not its public API, so the swap is
checked: a set of probe addresses must look up the same before and after, or the original lists
are put back. The arrays are built flat first and the lists freed before the per-chunk views are
made, so the freed memory is not pinned by new objects; glibc is then asked to return its free
heap pages (`malloc_trim`).
"""

import contextlib
import ctypes
import gc
import ipaddress
import random
import sys
from array import array
from collections.abc import Callable, Sequence
from typing import Any

_IP_LISTS = ("mainListFirstIP", "mainListFirstIPASN")
_SMALL_LISTS = (
    "mainListIDCountryCodes",
    "mainListIDASN",
    "mainListNetlength",
    "mainListNetlengthASN",
)
_LOW_64 = (1 << 64) - 1
_PROBES = 600  # addresses compared before and after (half IPv4, half IPv6), fixed seed


class Wide:
    """A read-only sequence of 128-bit ints kept as two arrays of 64-bit halves."""

    __slots__ = ("high", "low")

    def __init__(self, high: Sequence[int], low: Sequence[int]) -> None:
        self.high, self.low = high, low

    def __len__(self) -> int:
        return len(self.high)

    def __getitem__(self, index: int) -> int:
        return (self.high[index] << 64) | self.low[index]


def load_compact(load: Callable[[], Any]) -> Any:
    """`load()` (a new GeoIP2Fast), its lists swapped for arrays when that answers the same.

    If geoip2fast's internals are not the ones this module knows, the instance comes back as
    loaded; if the probes answer differently after the swap, a freshly loaded one does.
    """
    geo = load()
    module = sys.modules[type(geo).__module__]
    names = _IP_LISTS + _SMALL_LISTS
    if not all(isinstance(getattr(module, name, None), list) for name in names):
        return geo
    probes = _probe_addresses()
    expected = [_answer(geo, ip) for ip in probes]
    try:
        flat = {name: _flatten_ips(getattr(module, name)) for name in _IP_LISTS}
        flat |= {name: _flatten_small(getattr(module, name)) for name in _SMALL_LISTS}
    except (TypeError, ValueError, OverflowError):  # not the shapes this module knows
        return geo
    for name in names:
        setattr(module, name, None)
    gc.collect()
    _trim_heap()
    for name, data in flat.items():
        setattr(module, name, _views(data))
    if [_answer(geo, ip) for ip in probes] != expected:
        return load()
    return geo


def _flatten_ips(chunks: list[list[int]]) -> tuple[list[int], list[bool], bytes, bytes, bytes]:
    lengths = [len(chunk) for chunk in chunks]
    wide = [bool(chunk) and max(chunk) > 0xFFFFFFFF for chunk in chunks]
    narrow, high, low = array("I"), array("Q"), array("Q")
    for chunk, is_wide in zip(chunks, wide, strict=True):
        if is_wide:
            high.extend(value >> 64 for value in chunk)
            low.extend(value & _LOW_64 for value in chunk)
        else:
            narrow.extend(chunk)
    return lengths, wide, narrow.tobytes(), high.tobytes(), low.tobytes()


def _flatten_small(chunks: list[list[int]]) -> tuple[list[int], str, bytes]:
    largest = max((max(chunk) for chunk in chunks if chunk), default=0)
    code = "B" if largest < 1 << 8 else "H" if largest < 1 << 16 else "I"
    values = array(code)
    for chunk in chunks:
        values.extend(chunk)
    return [len(chunk) for chunk in chunks], code, values.tobytes()


def _views(data: tuple) -> list[Sequence[int]]:
    """Per-chunk sequences over the flat buffers, as geoip2fast indexes and bisects them."""
    chunks: list[Sequence[int]] = []
    if len(data) == 5:
        lengths, wide, narrow_bytes, high_bytes, low_bytes = data
        narrow = memoryview(narrow_bytes).cast("I")
        high, low = memoryview(high_bytes).cast("Q"), memoryview(low_bytes).cast("Q")
        at_narrow = at_wide = 0
        for length, is_wide in zip(lengths, wide, strict=True):
            if is_wide:
                end = at_wide + length
                chunks.append(Wide(high[at_wide:end], low[at_wide:end]))
                at_wide = end
            else:
                chunks.append(narrow[at_narrow : at_narrow + length])
                at_narrow += length
        return chunks
    lengths, code, values_bytes = data
    values, at = memoryview(values_bytes).cast(code), 0
    for length in lengths:
        chunks.append(values[at : at + length])
        at += length
    return chunks


def _probe_addresses() -> list[str]:
    rng = random.Random(20240618)
    v4 = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(_PROBES // 2)]
    v6 = [
        str(ipaddress.IPv6Address((0x2000 + rng.getrandbits(13)) << 112 | rng.getrandbits(112)))
        for _ in range(_PROBES // 2)
    ]
    return v4 + v6


def _answer(geo: Any, ip: str) -> tuple:
    result = geo.lookup(ip)
    return (result.country_code, result.asn_name, result.cidr, result.asn_cidr, result.is_private)


def _trim_heap() -> None:
    """Give glibc's free heap pages back to the OS (the freed lists' item arrays lived there)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its allocator keeps them
        ctypes.CDLL(None).malloc_trim(0)
