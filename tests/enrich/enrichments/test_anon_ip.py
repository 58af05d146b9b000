"""anon_ip: Snowplow's anonymisation table (valid, invalid, IPv6, hybrid, mapped), properties, config errors."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plowline.enrich.enrichments.anon_ip import AnonIp, anonymize_ip
from plowline.enrich.errors import EnrichmentConfigError
from tests.enrich.enrichments.support import NoAssets, raw_event, valid_parameters, web_event

SCHEMA = "iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-0-1"

# (ip, anonOctets, anonSegments, expected): the cases of Snowplow's AnonIpEnrichmentSpec.
CASES = {
    "v4 one octet": ("0.23.0.20", 1, 1, "0.23.0.x"),
    "v4 two octets": ("168.192.102.4", 2, 2, "168.192.x.x"),
    "v4 three octets": ("54.242.102.43", 3, 3, "54.x.x.x"),
    "v4 all octets": ("94.15.213.171", 4, 4, "x.x.x.x"),
    "invalid short, too few parts to reach": ("777.2", 1, 1, "777.2"),
    "invalid short, all": ("777.2.23", 4, 4, "x.x.x"),
    "invalid octet values": ("999.123.777.2", 3, 3, "999.x.x.x"),
    "invalid octet letters": ("999.aaa.bbb.c", 3, 3, "999.x.x.x"),
    "no separator at all": ("hello;goodbye", 3, 3, "hello;goodbye"),
    "empty": ("", 4, 4, "x"),
    "v6 one segment": ("4b0c:0:0:0:880c:99a8:4b0:4411", 1, 1, "4b0c:0:0:0:880c:99a8:4b0:x"),
    "v6 compressed is expanded": ("4b0c::880c:99a8:4b0:4411", 2, 2, "4b0c:0:0:0:880c:99a8:x:x"),
    "v6 three segments": ("2605:2700:0:3:0:0:4713:93e3", 3, 3, "2605:2700:0:3:0:x:x:x"),
    "v6 four segments": ("2605:2700:0:3::4713:93e3", 4, 4, "2605:2700:0:3:x:x:x:x"),
    "v6 segments independent of octets": ("2605:2700:0:3::4713:93e3", 4, 5, "2605:2700:0:x:x:x:x:x"),
    "v6 six segments": ("2605:2700:0:3::4713:93e3", 4, 6, "2605:2700:x:x:x:x:x:x"),
    "v6 seven segments": ("2605:2700:0:3::4713:93e3", 4, 7, "2605:x:x:x:x:x:x:x"),
    "v6 all segments": ("2605:2700:0:3::4713:93e3", 4, 8, "x:x:x:x:x:x:x:x"),
    "v6 all segments, more compressed": ("2605:2700::4713:93e3", 4, 8, "x:x:x:x:x:x:x:x"),
    "v6 all segments, short": ("2700::4713", 4, 8, "x:x:x:x:x:x:x:x"),
    "invalid v6 expanded by hand": ("2700:zzzz::gggg", 4, 6, "2700:zzzz:x:x:x:x:x:x"),
    "hybrid v6 + v4, two segments": ("f334::40cb:152.16.24.142", 4, 2, "f334:0:0:0:0:40cb:x:x"),
    "hybrid v6 + v4, four segments": ("f334::40cb:152.16.24.142", 4, 4, "f334:0:0:0:x:x:x:x"),
    "v4-compatible is v6": ("::192.168.0.1", 4, 1, "0:0:0:0:0:0:c0a8:x"),
    "v4-mapped keeps its prefix": ("::FFFF:152.16.24.123", 2, 4, "::FFFF:152.16.x.x"),
    "v4-mapped, all octets": ("::FFFF:152.16.24.123", 4, 4, "::FFFF:x.x.x.x"),
    "v6 upper case is lowered": ("2605:2700:0:3:0:0:4713:93E3", 1, 1, "2605:2700:0:3:0:0:4713:x"),
}


@pytest.mark.parametrize(("ip", "octets", "segments", "expected"), list(CASES.values()), ids=list(CASES))
def test_anonymize_table(ip: str, octets: int, segments: int, expected: str) -> None:
    assert anonymize_ip(ip, octets, segments) == expected


@given(st.ip_addresses(v=4), st.integers(1, 4))
def test_ipv4_with_n_octets_leaves_n_xs(address: ipaddress.IPv4Address, octets: int) -> None:
    result = anonymize_ip(str(address), octets, 1)
    assert result.count("x") == octets
    assert ipaddress.ip_address(result.replace("x", "1")).version == 4
    assert result.split(".")[: 4 - octets] == str(address).split(".")[: 4 - octets]


def _not_mapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None


@given(st.ip_addresses(v=6).filter(_not_mapped), st.integers(1, 8))
def test_ipv6_with_n_segments_leaves_n_xs(address: ipaddress.IPv6Address, segments: int) -> None:
    for text in (str(address), address.exploded):  # compressed and full forms alike
        result = anonymize_ip(text, 1, segments)
        assert result.count("x") == segments
        assert ipaddress.ip_address(result.replace("x", "1")).version == 6


def enrichment(parameters: dict[str, Any]) -> AnonIp:
    return AnonIp.from_config(valid_parameters(SCHEMA, parameters), NoAssets())


def test_segments_default_to_octets() -> None:
    anon = enrichment({"anonOctets": 2})
    assert (anon.octets, anon.segments) == (2, 2)
    event = web_event(user_ipaddress="2605:2700:0:3::4713:93e3")
    assert anon.enrich(event, raw_event()) == ()
    assert event.user_ipaddress == "2605:2700:0:3:0:0:x:x"


def test_enrich_sets_user_ipaddress_and_leaves_none_alone() -> None:
    anon = enrichment({"anonOctets": 1, "anonSegments": 3})
    event = web_event(user_ipaddress="70.46.123.145")
    anon.enrich(event, raw_event())
    assert event.user_ipaddress == "70.46.123.x"
    empty = web_event()
    anon.enrich(empty, raw_event())
    assert empty.user_ipaddress is None


@pytest.mark.parametrize(("parameters", "key"), [
    ({}, "parameters.anonOctets"),
    ({"anonOctets": 0}, "parameters.anonOctets"),
    ({"anonOctets": 5}, "parameters.anonOctets"),
    ({"anonOctets": 2.5}, "parameters.anonOctets"),
    ({"anonOctets": True}, "parameters.anonOctets"),
    ({"anonOctets": "2"}, "parameters.anonOctets"),
    ({"anonOctets": 2, "anonSegments": 9}, "parameters.anonSegments"),
], ids=["missing", "zero", "too many", "fraction", "boolean", "string", "too many segments"])
def test_bad_config_names_the_parameter(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        AnonIp.from_config(parameters, NoAssets())
    assert raised.value.key == key
    assert raised.value.fix


def test_whole_float_is_accepted() -> None:
    assert AnonIp.from_config({"anonOctets": 3.0}, NoAssets()).octets == 3
