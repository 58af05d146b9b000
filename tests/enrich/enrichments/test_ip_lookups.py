"""ip_lookups over small MaxMind databases built here, in GeoIP2 City / ISP / Domain / Connection-Type / ASN shapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plowline.enrich.assets import LocalAssetStore
from plowline.enrich.enrichments.ip_lookups import ASN_SCHEMA, IpLookups, strip_port
from plowline.enrich.errors import EnrichmentConfigError
from tests.enrich.enrichments.support import (
    FolderAssets,
    raw_event,
    valid_parameters,
    validate_entity,
    web_event,
    write_mmdb,
)

SCHEMA = "iglu:com.snowplowanalytics.snowplow/ip_lookups/jsonschema/2-0-1"
URI = "http://snowplow-hosted-assets.s3.amazonaws.com/third-party/maxmind"

CITY: dict[str, dict[str, Any]] = {
    "70.46.123.0/24": {
        "continent": {"code": "NA", "names": {"en": "North America"}},
        "country": {"iso_code": "US", "names": {"en": "United States", "de": "USA"}},
        "subdivisions": [{"iso_code": "FL", "names": {"en": "Florida"}}],
        "city": {"names": {"en": "Delray Beach"}},
        "postal": {"code": "33444"},
        "location": {"latitude": 26.4615, "longitude": -80.0728, "time_zone": "America/New_York"},
    },
    "81.2.69.0/24": {  # several subdivisions: the most specific one (last) is the region
        "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
        "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}},
                         {"iso_code": "WBK", "names": {"en": "West Berkshire"}}],
        "city": {"names": {"en": "Boxford"}},
        "location": {"latitude": 51.75, "longitude": -1.25, "time_zone": "Europe/London"},
    },
    "2001:db8::/32": {"country": {"iso_code": "DE", "names": {"en": "Germany"}}},  # no location at all
}
ISP = {"70.46.123.0/24": {"isp": "Nuvox", "organization": "NuVox Communications",
                          "autonomous_system_number": 13841}}
DOMAIN = {"70.46.123.0/24": {"domain": "nuvox.net"}}
CONNECTION: dict[str, dict[str, Any]] = {"70.46.123.0/24": {"connection_type": "Cable/DSL"}, "81.2.69.0/24": {"connection_type": "Corporate"}}
ASN: dict[str, dict[str, Any]] = {"70.46.123.0/24": {"autonomous_system_number": 13841, "autonomous_system_organization": "NuVox"},
       "81.2.69.0/24": {"autonomous_system_number": 20712}}


@pytest.fixture(scope="module")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("maxmind")
    write_mmdb(folder / "GeoIP2-City.mmdb", "GeoIP2-City", CITY)
    write_mmdb(folder / "GeoIP2-ISP.mmdb", "GeoIP2-ISP", ISP)
    write_mmdb(folder / "GeoIP2-Domain.mmdb", "GeoIP2-Domain", DOMAIN)
    write_mmdb(folder / "GeoIP2-Connection-Type.mmdb", "GeoIP2-Connection-Type", CONNECTION)
    write_mmdb(folder / "GeoLite2-ASN.mmdb", "GeoLite2-ASN", ASN)
    (folder / "not-a-database.mmdb").write_bytes(b"hello")
    return folder


ALL = {
    "geo": {"database": "GeoIP2-City.mmdb", "uri": URI},
    "isp": {"database": "GeoIP2-ISP.mmdb", "uri": URI},
    "domain": {"database": "GeoIP2-Domain.mmdb", "uri": URI},
    "connectionType": {"database": "GeoIP2-Connection-Type.mmdb", "uri": URI},
    "asn": {"database": "GeoLite2-ASN.mmdb", "uri": URI},
}


def lookups(databases: Path, sections: tuple[str, ...] = tuple(ALL)) -> IpLookups:
    parameters = valid_parameters(SCHEMA, {name: ALL[name] for name in sections})
    return IpLookups.from_config(parameters, FolderAssets(databases))


def test_all_databases(databases: Path) -> None:
    event = web_event(user_ipaddress="70.46.123.145")
    entities = lookups(databases).enrich(event, raw_event())
    assert (event.geo_country, event.geo_region, event.geo_city, event.geo_zipcode) == (
        "US", "FL", "Delray Beach", "33444")
    assert (event.geo_latitude, event.geo_longitude) == (26.4615, -80.0728)
    assert (event.geo_region_name, event.geo_timezone) == ("Florida", "America/New_York")
    assert (event.ip_isp, event.ip_organization, event.ip_domain, event.ip_netspeed) == (
        "Nuvox", "NuVox Communications", "nuvox.net", "Cable/DSL")
    assert entities == ({"schema": ASN_SCHEMA, "data": {"number": 13841, "organization": "NuVox"}},)
    validate_entity(entities[0])


def test_most_specific_subdivision_and_asn_without_organization(databases: Path) -> None:
    event = web_event(user_ipaddress="81.2.69.160")
    entities = lookups(databases).enrich(event, raw_event())
    assert (event.geo_region, event.geo_region_name, event.geo_zipcode) == ("WBK", "West Berkshire", None)
    assert event.ip_isp is None and event.ip_netspeed == "Corporate"
    assert entities == ({"schema": ASN_SCHEMA, "data": {"number": 20712}},)
    validate_entity(entities[0])


def test_missing_location_is_zero(databases: Path) -> None:
    event = web_event(user_ipaddress="2001:db8::1")
    assert lookups(databases, ("geo",)).enrich(event, raw_event()) == ()
    assert (event.geo_country, event.geo_latitude, event.geo_longitude, event.geo_city) == ("DE", 0.0, 0.0, None)


@pytest.mark.parametrize("ip", ["70.46.123.145:8080", "[70.46.123.145]:443", " 70.46.123.145"],
                         ids=["v4 with port", "bracketed with port", "leading space"])
def test_port_suffix_is_ignored(databases: Path, ip: str) -> None:
    event = web_event(user_ipaddress=ip)
    lookups(databases, ("geo",)).enrich(event, raw_event())
    assert event.geo_city == "Delray Beach"
    assert event.user_ipaddress == ip  # the field itself is not rewritten


@pytest.mark.parametrize("ip", ["8.8.8.8", "not an ip", "999.1.1.1", "::1", "unknown", "1.2.3.4.5"],
                         ids=["not in the databases", "garbage", "bad octet", "v6 loopback", "word", "too long"])
def test_lookup_errors_never_fail_the_event(databases: Path, ip: str) -> None:
    event = web_event(user_ipaddress=ip)
    assert lookups(databases).enrich(event, raw_event()) == ()
    assert event.geo_country is None and event.ip_isp is None and event.ip_netspeed is None


def test_no_ip_sets_nothing(databases: Path) -> None:
    event = web_event()
    assert lookups(databases).enrich(event, raw_event()) == ()
    assert event.geo_country is None


def test_results_are_cached_and_entities_are_fresh(databases: Path) -> None:
    enrichment = lookups(databases)
    first = enrichment.enrich(web_event(user_ipaddress="70.46.123.145"), raw_event())
    first[0]["data"]["number"] = 0  # a later step may change an entity in place
    second = enrichment.enrich(web_event(user_ipaddress="70.46.123.145"), raw_event())
    assert second[0]["data"]["number"] == 13841
    assert enrichment.lookup.cache_info().hits == 1
    enrichment.close()


@pytest.mark.parametrize(("text", "expected"), [
    ("1.2.3.4", "1.2.3.4"), ("1.2.3.4:80", "1.2.3.4"), ("[::1]:80", "::1"), ("[::1]", "::1"),
    ("2001:db8::1", "2001:db8::1"), ("::ffff:1.2.3.4", "::ffff:1.2.3.4"), ("[broken", "[broken"),
])
def test_strip_port(text: str, expected: str) -> None:
    assert strip_port(text) == expected


def test_databases_from_a_local_folder(databases: Path) -> None:
    parameters = {"geo": {"database": "GeoIP2-City.mmdb", "uri": f"file://{databases}"}}
    enrichment = IpLookups.from_config(valid_parameters(SCHEMA, parameters), LocalAssetStore(databases, databases))
    event = web_event(user_ipaddress="70.46.123.145")
    enrichment.enrich(event, raw_event())
    assert event.geo_country == "US"


@pytest.mark.parametrize(("parameters", "key"), [
    ({"geo": {"database": "GeoIP2-City.mmdb"}}, "parameters.geo.uri"),
    ({"geo": "GeoIP2-City.mmdb"}, "parameters.geo"),
    ({"isp": {"database": "not-a-database.mmdb", "uri": URI}}, "parameters.isp"),
    ({"city": {"database": "GeoIP2-City.mmdb", "uri": URI}}, "parameters.city"),
], ids=["no uri", "not an object", "not a MaxMind file", "unknown section"])
def test_bad_config_names_the_parameter(databases: Path, parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        IpLookups.from_config(parameters, FolderAssets(databases))
    assert raised.value.key == key


def test_missing_file_names_the_section(tmp_path: Path) -> None:
    parameters = {"asn": {"database": "GeoLite2-ASN.mmdb", "uri": "maxmind"}}
    with pytest.raises(EnrichmentConfigError) as raised:
        IpLookups.from_config(parameters, LocalAssetStore(tmp_path, tmp_path / "cache"))
    assert raised.value.key == "parameters.asn.uri"
    assert "no such file" in raised.value.problem
