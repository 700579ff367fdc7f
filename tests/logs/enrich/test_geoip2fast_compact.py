"""geoip2fast's data in compact arrays answers every lookup exactly as geoip2fast's own lists do."""

import ipaddress
import random
import sys

from geoip2fast import GeoIP2Fast

from kandji_bridge.logs.enrich import GEOIP2FAST_DATA, Geoip2FastDatabase
from kandji_bridge.logs.enrich.geoip2fast_compact import Wide, load_compact


def load() -> GeoIP2Fast:
    return GeoIP2Fast(verbose=False, geoip2fast_data_file=GEOIP2FAST_DATA)


def answer(geo: GeoIP2Fast, ip: str) -> tuple:
    result = geo.lookup(ip)
    return (result.country_code, result.asn_name, result.cidr, result.asn_cidr, result.is_private)


def addresses_around_networks(module: object, rng: random.Random) -> list[str]:
    """Random addresses, and the edges of sampled networks: first, last, and one past each."""
    found = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(3000)]
    found += [
        str(ipaddress.IPv6Address((0x2000 + rng.getrandbits(13)) << 112 | rng.getrandbits(112)))
        for _ in range(3000)
    ]
    for firsts, lengths in (
        (module.mainListFirstIP, module.mainListNetlength),
        (module.mainListFirstIPASN, module.mainListNetlengthASN),
    ):
        for _ in range(1500):
            chunk = rng.randrange(len(firsts))
            if not firsts[chunk]:
                continue
            at = rng.randrange(len(firsts[chunk]))
            first, length = firsts[chunk][at], lengths[chunk][at]
            bits = 32 if first <= 0xFFFFFFFF else 128
            last = first + (1 << (bits - length)) - 1
            for value in (first - 1, first, last, last + 1):
                if 0 <= value < 1 << bits:
                    make = ipaddress.IPv4Address if bits == 32 else ipaddress.IPv6Address
                    found.append(str(make(value)))
    return found


def test_compact_data_answers_like_geoip2fast() -> None:
    plain = load()
    module = sys.modules[type(plain).__module__]
    addresses = addresses_around_networks(module, random.Random(5))
    expected = [answer(plain, ip) for ip in addresses]

    compacted = load_compact(load)

    assert not isinstance(module.mainListFirstIP[0], list)  # the swap happened
    assert any(isinstance(chunk, Wide) for chunk in module.mainListFirstIP)  # IPv6 chunks too
    assert [answer(compacted, ip) for ip in addresses] == expected
    assert Geoip2FastDatabase().lookup("2001:4860:4860::8888") == {
        "ASCountryCode": "US",
        "ASOrganization": "GOOGLE",
    }
