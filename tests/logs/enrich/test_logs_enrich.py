"""Enrichment: geoip2fast, MaxMind's test databases, skipped private addresses, custom rules."""

import json
import os
from pathlib import Path
from typing import Any

import pytest

from kandji_bridge.errors import BridgeError
from kandji_bridge.logs.enrich import (
    ENV_MMDB,
    ENV_RULES,
    Enricher,
    EnrichmentError,
    Geoip2FastDatabase,
    IpDetails,
    MmdbDatabase,
    build_enricher,
    from_ipinfo,
    is_lookup_address,
    layout_for,
    load_rules,
    mmdb_paths_from_env,
    parse_rules,
)
from kandji_bridge.logs.normalize import NormalizeContext, full_row, normalize


def event(**metadata: Any) -> dict[str, Any]:
    return {
        "id": "01JENRICH000000000000000001",
        "action": "view",
        "occurred_at": "2025-03-04T16:29:55Z",
        "actor_id": "cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5",
        "actor_type": "user",
        "target_id": "bd4eb679-d679-4071-a395-5855807b6829",
        "target_type": "device",
        "target_component": "filevault_key",
        "new_state": {"device_name": "Ana's MacBook"},
        "metadata": metadata,
    }


def row_for(data: dict[str, Any], ctx: NormalizeContext) -> dict[str, Any]:
    return normalize(data, json.dumps(data), ctx)


def src(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key.startswith("src")}


class Spy:
    """An IP database that records what it was asked."""

    name = "spy"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def lookup(self, ip: str) -> dict[str, Any]:
        self.asked.append(ip)
        return {"ASCountryCode": "ZZ"}


# --- .mmdb files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "ip", "expected"),
    [
        (
            "GeoIP2-City-Test.mmdb",
            "81.2.69.142",
            {"ASCountryCode": "GB", "City": "London", "Latitude": 51.5142, "Longitude": -0.0931},
        ),
        (
            "GeoLite2-City-Test.mmdb",
            "89.160.20.112",
            {"ASCountryCode": "SE", "City": "Linköping", "Latitude": 58.4167, "Longitude": 15.6167},
        ),
        ("GeoIP2-Country-Test.mmdb", "2001:218::1", {"ASCountryCode": "JP"}),
        (
            "GeoIP2-Enterprise-Test.mmdb",
            "89.160.20.112",
            {
                "ASCountryCode": "SE",
                "City": "Linköping",
                "Latitude": 58.4167,
                "Longitude": 15.6167,
                "ASNumber": 29518,
                "ASOrganization": "Bredband2 AB",
                "ISP": "Bredband2 AB",
                "ConnectionType": "Corporate",
                "UserType": "government",
            },
        ),
        (
            "GeoIP2-ISP-Test.mmdb",
            "149.101.100.1",
            {"ASNumber": 6167, "ASOrganization": "CELLCO-PART", "ISP": "Verizon Wireless"},
        ),
        ("GeoIP2-Connection-Type-Test.mmdb", "149.101.100.1", {"ConnectionType": "Cellular"}),
        (
            "GeoLite2-ASN-Test.mmdb",
            "1.128.0.1",
            {"ASNumber": 1221, "ASOrganization": "Telstra Pty Ltd"},
        ),
        ("GeoLite2-ASN-Test.mmdb", "81.2.69.142", {}),  # not in this database
    ],
)
def test_each_maxmind_database(maxmind: Path, file: str, ip: str, expected: dict) -> None:
    database = MmdbDatabase(maxmind / file)
    try:
        assert database.name == file.removesuffix("-Test.mmdb")
        assert database.lookup(ip) == expected
    finally:
        database.close()


def test_several_databases_fill_every_column(maxmind: Path, ctx) -> None:
    names = ["GeoIP2-City-Test", "GeoIP2-ISP-Test", "GeoIP2-Connection-Type-Test"]
    enricher = build_enricher([maxmind / f"{name}.mmdb" for name in names], env={})
    row = full_row(enricher.enrich(row_for(event(ip_address="216.160.83.56"), ctx)))
    assert src(row) == {
        "srcIP": "216.160.83.56",
        "srcASCountryCode": "US",
        "srcASNumber": 209,
        # Neither MaxMind file names the AS organization; geoip2fast's bundled data does.
        "srcASOrganization": "CENTURYLINK-US-LEGACY-QWEST",
        "srcCity": "Milton",
        "srcConnectionType": "Corporate",
        "srcISP": "Century Link",
        "srcLatitude": 47.2513,
        "srcLongitude": -122.3149,
        "srcUserType": "",
    }
    assert row["dstIP"] == "" and row["dstASCountryCode"] == ""
    enricher.close()


def test_first_database_wins_a_field(maxmind: Path, ctx) -> None:
    enterprise_first = build_enricher(
        [maxmind / "GeoIP2-Enterprise-Test.mmdb", maxmind / "GeoIP2-ISP-Test.mmdb"],
        use_geoip2fast=False,
        env={},
    )
    row = full_row(enterprise_first.enrich(row_for(event(ip="89.160.20.112"), ctx)))
    assert (row["srcISP"], row["srcUserType"]) == ("Bredband2 AB", "government")


def test_geoip2fast_alone(ctx) -> None:
    enricher = build_enricher([], env={})
    row = full_row(enricher.enrich(row_for(event(ip_address="81.2.69.142"), ctx)))
    assert src(row) == {
        "srcIP": "81.2.69.142",
        "srcASCountryCode": "GB",
        "srcASNumber": 0,
        "srcASOrganization": "Andrews & Arnold Ltd",
        "srcCity": "",
        "srcConnectionType": "",
        "srcISP": "",
        "srcLatitude": 0.0,
        "srcLongitude": 0.0,
        "srcUserType": "",
    }
    v6 = full_row(enricher.enrich(row_for(event(ip="2a02:cf40::1"), ctx)))
    assert (v6["srcASCountryCode"], v6["srcASOrganization"]) == ("DK", "Christian Ebsen ApS")


def test_destination_is_enriched_too(maxmind: Path, ctx) -> None:
    enricher = build_enricher([maxmind / "GeoIP2-City-Test.mmdb"], use_geoip2fast=False, env={})
    row = full_row(
        enricher.enrich(row_for(event(ip="10.0.0.9", destination_ip="81.2.69.142"), ctx))
    )
    assert (row["srcIP"], row["srcASCountryCode"]) == ("10.0.0.9", "")
    assert (row["dstIP"], row["dstCity"], row["dstASCountryCode"]) == (
        "81.2.69.142",
        "London",
        "GB",
    )


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.4.17",
        "172.16.5.9",
        "192.168.1.76",
        "127.0.0.1",
        "169.254.10.1",
        "100.64.0.1",  # carrier-grade NAT
        "192.0.2.10",  # documentation
        "224.0.0.251",  # multicast
        "240.0.0.1",  # reserved
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fc00::5",
        "ff02::1",
        "2001:db8::1",
    ],
)
def test_private_and_reserved_addresses_are_not_looked_up(ip: str, ctx) -> None:
    spy = Spy()
    row = full_row(Enricher([spy]).enrich(row_for(event(ip=ip), ctx)))
    assert spy.asked == []
    assert row["srcIP"] == ip and row["srcASCountryCode"] == ""
    assert not is_lookup_address(ip)


def test_lookups_are_cached(ctx) -> None:
    spy = Spy()
    enricher = Enricher([spy])
    for _ in range(5):
        row = enricher.enrich(row_for(event(ip="81.2.69.142"), ctx))
        assert row["srcASCountryCode"] == "ZZ"
    enricher.enrich(row_for(event(ip="89.160.20.112"), ctx))
    assert spy.asked == ["81.2.69.142", "89.160.20.112"]
    assert enricher.details("81.2.69.142") == IpDetails(ASCountryCode="ZZ")


def test_no_ip_no_lookup(ctx) -> None:
    spy = Spy()
    row = full_row(Enricher([spy]).enrich(row_for(event(), ctx)))
    assert spy.asked == [] and row["srcIP"] == ""


def test_mmdb_paths_from_the_environment(maxmind: Path) -> None:
    city, asn = maxmind / "GeoIP2-City-Test.mmdb", maxmind / "GeoLite2-ASN-Test.mmdb"
    env = {ENV_MMDB: f" {city} ,{asn}{os.pathsep}{city}"}
    assert mmdb_paths_from_env(env) == [str(city), str(asn), str(city)]
    assert mmdb_paths_from_env({}) == []
    enricher = build_enricher(env={ENV_MMDB: f"{city},{asn}"}, use_geoip2fast=False)
    assert [database.name for database in enricher.databases] == ["GeoIP2-City", "GeoLite2-ASN"]
    enricher.close()


def test_missing_mmdb_is_one_clear_sentence(tmp_path: Path) -> None:
    with pytest.raises(EnrichmentError) as caught:
        build_enricher(env={ENV_MMDB: str(tmp_path / "GeoLite2-City.mmdb")})
    message = str(caught.value)
    assert message == (
        f"The IP database {tmp_path / 'GeoLite2-City.mmdb'} does not exist; fix the path in "
        f"{ENV_MMDB} or remove it from the list."
    )
    assert isinstance(caught.value, BridgeError)


@pytest.mark.parametrize("content", [b"", b"not a maxmind database at all" * 10])
def test_corrupt_mmdb_is_one_clear_sentence(tmp_path: Path, content: bytes) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(content)
    with pytest.raises(EnrichmentError, match=r"is not a readable \.mmdb database .*download it"):
        MmdbDatabase(broken)


def test_unsupported_database_type(tmp_path: Path) -> None:
    with pytest.raises(EnrichmentError, match="'GeoIP2-Domain' database; kandji-bridge reads"):
        layout_for("GeoIP2-Domain", tmp_path / "GeoIP2-Domain.mmdb")
    assert layout_for("DBIP-City-Lite", tmp_path / "x.mmdb").__name__ == "from_maxmind_location"
    assert layout_for("ipinfo lite.mmdb", tmp_path / "x.mmdb") is from_ipinfo


def test_ipinfo_layouts() -> None:
    lite = {"asn": "AS15169", "as_name": "Google LLC", "country_code": "US", "continent": "NA"}
    assert from_ipinfo(lite) == {
        "ASCountryCode": "US",
        "ASNumber": 15169,
        "ASOrganization": "Google LLC",
    }
    location = {"city": "Mountain View", "country": "US", "lat": "37.4056", "lng": "-122.0775"}
    assert from_ipinfo(location) == {
        "ASCountryCode": "US",
        "City": "Mountain View",
        "Latitude": 37.4056,
        "Longitude": -122.0775,
    }
    asn = {"asn": "AS13335", "name": "Cloudflare, Inc.", "type": "hosting", "domain": "cf.com"}
    assert from_ipinfo(asn) == {
        "ASNumber": 13335,
        "ASOrganization": "Cloudflare, Inc.",
        "UserType": "hosting",
    }
    assert from_ipinfo({"org": "AS3320 Deutsche Telekom AG"}) == {
        "ASOrganization": "Deutsche Telekom AG"
    }


def test_geoip2fast_database_only_reports_what_it_found() -> None:
    database = Geoip2FastDatabase()
    assert database.lookup("81.2.69.142") == {
        "ASCountryCode": "GB",
        "ASOrganization": "Andrews & Arnold Ltd",
    }
    assert database.lookup("not an ip") == {}


# --- custom rules --------------------------------------------------------------------------------


RULE_SETS = [
    {
        "name": "vip-admins",
        "description": "admins we watch closely",
        "sources": ["ignored here"],
        "path": "normalized.actor.email",
        "rules": [
            {"type": "exact", "pattern": "ana@example.com", "data": {"tier": "vip", "level": 1}}
        ],
    },
    {
        "name": "office-networks",
        "path": "srcIP",
        "provider": "netops",
        "rules": [
            {"type": "cidr", "pattern": "81.2.69.0/24", "data": {"site": "london"}},
            {"type": "cidr", "pattern": "81.2.0.0/16", "data": {"site": "uk"}},
            {"type": "cidr", "pattern": "2001:db8::/32", "data": {"site": "lab"}},
        ],
    },
    {
        "name": "scripted-clients",
        "path": "metadata.user_agent",
        "rules": [
            {"type": "regex", "pattern": r"^(curl|python-requests)/", "data": {"kind": "cli"}}
        ],
    },
    {
        "name": "secret-access",
        "path": "eventName",
        "rules": [{"type": "regex", "pattern": r"\.view$", "data": {"severity": "high"}}],
    },
    {
        "name": "watched-items",
        "path": "resources",
        "rules": [{"type": "exact", "pattern": "bd4eb679-d679-4071-a395-5855807b6829", "data": {}}],
    },
    {"name": "off", "isActive": False, "path": "srcIP", "rules": []},
]


def test_custom_rules_append_runreveal_style_enrichments(ctx) -> None:
    enricher = Enricher([], parse_rules(RULE_SETS))
    data = event(ip="81.2.69.142", user_agent="curl/8.5.0", actor_email="ana@example.com")
    row = full_row(enricher.enrich(row_for(data, ctx), data))
    assert row["enrichments"] == [
        ({"tier": "vip", "level": "1"}, "vip-admins", "custom", "custom", "ana@example.com"),
        ({"site": "london"}, "office-networks", "netops", "custom", "81.2.69.142"),
        ({"site": "uk"}, "office-networks", "netops", "custom", "81.2.69.142"),
        ({"kind": "cli"}, "scripted-clients", "custom", "custom", "curl/8.5.0"),
        ({"severity": "high"}, "secret-access", "custom", "custom", "device.view"),
        ({}, "watched-items", "custom", "custom", "bd4eb679-d679-4071-a395-5855807b6829"),
    ]


def test_rules_that_do_not_match_add_nothing(ctx) -> None:
    enricher = Enricher([], parse_rules(RULE_SETS))
    data = event(ip="10.1.2.3", user_agent="Mozilla/5.0", actor_email="bob@example.com")
    data["action"], data["target_id"] = "update", "someone-else"
    row = full_row(enricher.enrich(row_for(data, ctx), data))
    assert row["enrichments"] == []


def test_rule_paths(ctx) -> None:
    rules = parse_rules(
        [
            {"name": "by-tag", "path": "tags.target_name", "rules": [_exact("Ana's MacBook")]},
            {
                "name": "by-column",
                "path": "actorId",
                "rules": [_exact("cf40d6e7-20cb-4da9-84a1-9ad0b7003ca5")],
            },
            {"name": "by-raw", "path": "target_component", "rules": [_exact("filevault_key")]},
            {
                "name": "by-state",
                "path": "newState.device_name",
                "rules": [_exact("Ana's MacBook")],
            },
            {
                "name": "by-new-state",
                "path": "new_state.device_name",
                "rules": [_exact("Ana's MacBook")],
            },
            {"name": "by-index", "path": "raw.metadata.hops.1", "rules": [_exact("10.0.0.2")]},
            {"name": "by-number", "path": "metadata.attempts", "rules": [_exact("3")]},
            {"name": "missing", "path": "metadata.nothing.here", "rules": [_exact("")]},
        ]
    )
    data = event(hops=["10.0.0.1", "10.0.0.2"], attempts=3)
    row = full_row(Enricher([], rules).enrich(row_for(data, ctx), data))
    assert [entry[1] for entry in row["enrichments"]] == [
        "by-tag",
        "by-column",
        "by-raw",
        "by-state",
        "by-new-state",
        "by-index",
        "by-number",
    ]
    # Without the event, only paths into the row can match.
    row = full_row(Enricher([], rules).enrich(row_for(data, ctx)))
    assert [entry[1] for entry in row["enrichments"]] == ["by-tag", "by-column"]


def _exact(pattern: str) -> dict[str, Any]:
    return {"type": "exact", "pattern": pattern, "data": {"hit": "yes"}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("nope", "The enrichments in the rules given must be a JSON list"),
        ([42], "Enrichment 1 in the rules given is not a JSON object."),
        ([{"path": "srcIP", "rules": []}], "Enrichment 1 in the rules given has no name."),
        ([{"name": "x", "rules": []}], "The enrichment 'x' in the rules given needs a path"),
        ([{"name": "x", "path": "", "rules": []}], "The enrichment 'x' has no path"),
        ([{"name": "x", "path": "actor", "rules": []}], "path 'actor' is not a single value"),
        (
            [{"name": "x", "path": "srcIP", "rules": [{"type": "fuzzy", "pattern": "a"}]}],
            "The enrichment 'x' rule 1 has type 'fuzzy'; use exact, regex or cidr.",
        ),
        (
            [{"name": "x", "path": "srcIP", "rules": [{"type": "regex", "pattern": "(a"}]}],
            "The enrichment 'x' rule 1 has an invalid regex '(a'",
        ),
        (
            [{"name": "x", "path": "srcIP", "rules": [{"type": "cidr", "pattern": "10.0.0.0/33"}]}],
            "The enrichment 'x' rule 1 has an invalid CIDR '10.0.0.0/33'; write it like",
        ),
        (
            [{"name": "x", "path": "srcIP", "rules": [{"type": "exact"}]}],
            "The enrichment 'x' rule 1 needs a pattern (text).",
        ),
        (
            [
                {
                    "name": "x",
                    "path": "srcIP",
                    "rules": [{"type": "exact", "pattern": "a", "data": 3}],
                }
            ],
            "The enrichment 'x' rule 1 data must be an object.",
        ),
    ],
)
def test_bad_rules_are_one_clear_sentence(document: Any, message: str) -> None:
    with pytest.raises(EnrichmentError) as caught:
        parse_rules(document)
    assert message in str(caught.value)


def test_rules_file_from_argument_and_environment(tmp_path: Path, ctx) -> None:
    path = tmp_path / "enrichments.json"
    path.write_text(json.dumps({"enrichments": RULE_SETS}))
    assert [rule_set.name for rule_set in load_rules(path)] == [
        "vip-admins",
        "office-networks",
        "scripted-clients",
        "secret-access",
        "watched-items",
    ]
    enricher = build_enricher([], env={ENV_RULES: str(path)}, use_geoip2fast=False)
    assert len(enricher.rule_sets) == 5
    with pytest.raises(EnrichmentError, match="does not exist"):
        load_rules(tmp_path / "missing.json")
    path.write_text("{not json")
    with pytest.raises(EnrichmentError, match="is not valid JSON"):
        build_enricher([], rules_path=path, use_geoip2fast=False, env={})
