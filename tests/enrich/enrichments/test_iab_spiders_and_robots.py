"""IAB spiders & robots: the IAB file formats, the decision order, and entities valid against their schema."""

from __future__ import annotations

import ipaddress
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from plowline.enrich.enrichments.iab_spiders_and_robots import IabSpidersAndRobots, IpRanges, parse_ip
from plowline.enrich.errors import EnrichmentConfigError, EnrichmentFailure
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent

DATA = Path(__file__).resolve().parents[2] / "data" / "enrichments" / "iab_spiders_and_robots"
IGLU_CENTRAL = Path(__file__).resolve().parents[4] / "shared" / "iglu-central" / "schemas"
ENTITY = Draft4Validator(json.loads((IGLU_CENTRAL / "com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0").read_text()))
CONFIG = Draft4Validator(json.loads(
    (IGLU_CENTRAL / "com.snowplowanalytics.snowplow.enrichments/iab_spiders_and_robots_enrichment/jsonschema/1-0-1")
    .read_text()))
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BROWSER_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
GOOGLEBOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


class FolderAssets:
    """Every uri resolves to one local folder; records what was asked for."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.asked: list[tuple[str, str]] = []

    def path(self, uri: str, database: str) -> Path:
        self.asked.append((uri, database))
        return self.folder / database


def config_parameters() -> dict[str, Any]:
    data = json.loads((DATA / "iab_spiders_and_robots_enrichment.json").read_text())["data"]
    CONFIG.validate(data)
    return data["parameters"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def iab() -> IabSpidersAndRobots:
    return IabSpidersAndRobots.from_config(config_parameters(), FolderAssets(DATA))


def classify(iab: IabSpidersAndRobots, useragent: str | None, ip: str | None,
             when: datetime | None = NOW) -> dict[str, Any] | None:
    event = EnrichedEvent(useragent=useragent, user_ipaddress=ip, derived_tstamp=when)
    entities = list(iab.enrich(event, RawEvent("com.snowplowanalytics.snowplow", "tp2", {})))
    if not entities:
        return None
    assert len(entities) == 1 and entities[0]["schema"] == "iglu:com.iab.snowplow/spiders_and_robots/jsonschema/1-0-0"
    ENTITY.validate(entities[0]["data"])
    return entities[0]["data"]  # type: ignore[no-any-return]


def verdict(robot: bool, category: str, reason: str, impact: str) -> dict[str, Any]:
    return {"spiderOrRobot": robot, "category": category, "reason": reason, "primaryImpact": impact}


BROWSER = verdict(False, "BROWSER", "PASSED_ALL", "NONE")
IP_EXCLUDED = verdict(True, "SPIDER_OR_ROBOT", "FAILED_IP_EXCLUDE", "UNKNOWN")
NOT_INCLUDED = verdict(True, "SPIDER_OR_ROBOT", "FAILED_UA_INCLUDE", "UNKNOWN")
CUSTOM_EXCLUDED = verdict(True, "SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "UNKNOWN")


@pytest.mark.parametrize(("useragent", "ip", "when", "expected"), [
    (BROWSER_UA, "8.8.8.8", NOW, BROWSER),
    (GOOGLEBOT_UA, "8.8.8.8", NOW, verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_AND_AD_IMPRESSIONS")),
    ("Mozilla/5.0 (compatible; bingbot/2.0)", "8.8.8.8", NOW,
     verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_IMPRESSIONS")),
    ("Mozilla/5.0 SomeCrawler/1.0", "8.8.8.8", NOW,
     verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "AD_IMPRESSIONS")),
    ("Mozilla/5.0 FriendlyCrawler/1.0", "8.8.8.8", NOW, BROWSER),
    ("Mozilla/5.0 nice-crawler/1.0", "8.8.8.8", NOW, BROWSER),
    ("curl/8.0", "8.8.8.8", NOW, NOT_INCLUDED),
    ("Some Mozilla-like agent", "8.8.8.8", NOW, NOT_INCLUDED),
    ("Android Dalvik/2.1.0", "8.8.8.8", NOW, BROWSER),
    (BROWSER_UA, "192.0.2.77", NOW, IP_EXCLUDED),
    (BROWSER_UA, "198.51.100.17", NOW, IP_EXCLUDED),
    (BROWSER_UA, "198.51.100.18", NOW, BROWSER),
    (BROWSER_UA, "203.0.113.200", NOW, IP_EXCLUDED),
    (BROWSER_UA, "203.0.113.127", NOW, BROWSER),
    (BROWSER_UA, "2001:db8:abcd:12::1", NOW, IP_EXCLUDED),
    (BROWSER_UA, "[2001:db8:abcd::1]:443", NOW, IP_EXCLUDED),
    (BROWSER_UA, "192.0.2.1:8080", NOW, IP_EXCLUDED),
    (BROWSER_UA, "::ffff:192.0.2.1", NOW, IP_EXCLUDED),
    (None, "192.0.2.1", NOW, IP_EXCLUDED),
    (None, "8.8.8.8", NOW, BROWSER),
    ("   ", "8.8.8.8", NOW, BROWSER),
    (GOOGLEBOT_UA, "not-an-ip", NOW, verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_AND_AD_IMPRESSIONS")),
    (GOOGLEBOT_UA, None, NOW, verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_AND_AD_IMPRESSIONS")),
], ids=["browser", "googlebot-both-impacts", "bingbot-page-impressions", "crawler-ad-impressions",
        "exception-pattern", "exception-pattern-case-insensitive", "not-in-include-list",
        "include-start-of-string-only", "include-anywhere", "ip-in-cidr", "ip-exact", "ip-next-to-exact",
        "ip-cidr-with-host-bits", "ip-just-below-block", "ipv6-in-cidr", "ipv6-with-port", "ipv4-with-port",
        "ipv4-mapped-ipv6", "no-useragent-ip-excluded", "no-useragent-browser", "blank-useragent-browser",
        "unreadable-ip-ignored", "no-ip"])
def test_classification(iab: IabSpidersAndRobots, useragent: str | None, ip: str | None, when: datetime,
                        expected: dict[str, Any]) -> None:
    assert classify(iab, useragent, ip, when) == expected


@pytest.mark.parametrize(("useragent", "ip", "expected"), [
    ("acme-uptime-monitor googlebot", "192.0.2.1", BROWSER),
    ("Mozilla/5.0 ACME-Load-Tester/3", "8.8.8.8", CUSTOM_EXCLUDED),
    ("acme-load-tester", "192.0.2.1", CUSTOM_EXCLUDED),
    ("acme-uptime-monitor acme-load-tester", "8.8.8.8", BROWSER),
], ids=["custom-include-beats-ip-and-exclude-file", "custom-exclude-case-insensitive",
        "custom-exclude-beats-ip", "custom-include-beats-custom-exclude"])
def test_custom_lists_come_first(iab: IabSpidersAndRobots, useragent: str, ip: str, expected: dict[str, Any]) -> None:
    assert classify(iab, useragent, ip) == expected


@pytest.mark.parametrize(("useragent", "when", "expected"), [
    ("Mozilla/5.0 (compatible; OldBot/1.0)", datetime(2020, 6, 14, 23, 59, tzinfo=UTC),
     verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_AND_AD_IMPRESSIONS")),
    ("Mozilla/5.0 (compatible; OldBot/1.0)", datetime(2020, 6, 15, tzinfo=UTC),
     verdict(True, "INACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_AND_AD_IMPRESSIONS")),
    ("Mozilla/5.0 ancientbot", datetime(2018, 12, 31, tzinfo=UTC),
     verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_IMPRESSIONS")),
    ("Mozilla/5.0 ancientbot", datetime(2019, 1, 2, tzinfo=UTC),
     verdict(True, "INACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_IMPRESSIONS")),
    ("Mozilla/5.0 deadbot", NOW, BROWSER),
    ("Opera/9.80 Some Legacy Browser", NOW, BROWSER),
    ("Some Legacy Browser", datetime(2017, 3, 29, tzinfo=UTC), BROWSER),
    ("Some Legacy Browser", datetime(2017, 3, 30, tzinfo=UTC), NOT_INCLUDED),
    ("Retired Browser", datetime(2000, 1, 1, tzinfo=UTC), NOT_INCLUDED),
    ("Commented Browser", NOW, NOT_INCLUDED),
    ("Mozilla/5.0 pipe|bot", NOW, verdict(True, "ACTIVE_SPIDER_OR_ROBOT", "FAILED_UA_EXCLUDE", "PAGE_AND_AD_IMPRESSIONS")),
], ids=["exclude-before-inactive-date", "exclude-from-inactive-date", "inactive-record-before-its-date",
        "inactive-record-after-its-date", "inactive-record-without-date-never-matches", "include-also-by-other-record",
        "include-record-valid-before-its-date", "include-record-invalid-from-its-date", "inactive-include-without-date",
        "commented-line-ignored", "csv-quoted-pattern"])
def test_dates_and_record_flags(iab: IabSpidersAndRobots, useragent: str, when: datetime, expected: dict[str, Any]) -> None:
    assert classify(iab, useragent, "8.8.8.8", when) == expected


def test_start_of_string_exclude_pattern() -> None:
    iab = IabSpidersAndRobots.from_config(config_parameters(), FolderAssets(DATA))
    when = datetime(2019, 1, 1, tzinfo=UTC)
    assert classify(iab, "Mozilla/5.0 (compatible; OldBot/1.0)", None, when)["category"] == "ACTIVE_SPIDER_OR_ROBOT"  # type: ignore[index]
    assert classify(iab, "Mozilla/4.0 Mozilla/5.0 (compatible; OldBot/1.0)", None, when) == BROWSER


def test_the_same_useragent_at_other_times_is_judged_again(iab: IabSpidersAndRobots) -> None:
    useragent = "Mozilla/5.0 (compatible; OldBot/1.0)"
    categories = [classify(iab, useragent, None, datetime(year, 1, 1, tzinfo=UTC))["category"]  # type: ignore[index]
                  for year in (2019, 2021, 2019)]
    assert categories == ["ACTIVE_SPIDER_OR_ROBOT", "INACTIVE_SPIDER_OR_ROBOT", "ACTIVE_SPIDER_OR_ROBOT"]


@pytest.mark.parametrize(("useragent", "ip", "when"), [
    (BROWSER_UA, "8.8.8.8", None),
    (None, None, NOW),
    ("", "unknown", NOW),
], ids=["no-derived-tstamp", "no-useragent-no-ip", "blank-useragent-unreadable-ip"])
def test_skipped_without_inputs(iab: IabSpidersAndRobots, useragent: str | None, ip: str | None,
                                when: datetime | None) -> None:
    assert classify(iab, useragent, ip, when) is None


def test_bad_impact_flag_fails_the_event_like_the_iab_client(iab: IabSpidersAndRobots) -> None:
    with pytest.raises(EnrichmentFailure) as failure:
        classify(iab, "Mozilla/5.0 weirdimpact", "8.8.8.8")
    assert failure.value.messages == [{"error": "Invalid value of impression flag: '9'"}]


def test_files_come_from_the_asset_store() -> None:
    assets = FolderAssets(DATA)
    IabSpidersAndRobots.from_config(config_parameters(), assets)
    assert sorted(assets.asked) == [("s3://my-private-bucket/iab", "exclude_current.txt"),
                                    ("s3://my-private-bucket/iab", "include_current.txt"),
                                    ("s3://my-private-bucket/iab", "ip_exclude_current_cidr.txt")]


def test_lists_are_optional() -> None:
    parameters = {name: value for name, value in config_parameters().items() if not name.endswith("Useragents")}
    iab = IabSpidersAndRobots.from_config(parameters, FolderAssets(DATA))
    assert classify(iab, "acme-load-tester", "8.8.8.8") == NOT_INCLUDED


@pytest.mark.parametrize(("change", "key"), [
    (lambda p: p.pop("ipFile"), "parameters.ipFile"),
    (lambda p: p.__setitem__("excludeUseragentFile", "s3://bucket/exclude_current.txt"), "parameters.excludeUseragentFile"),
    (lambda p: p["includeUseragentFile"].__setitem__("database", "include.txt"), "parameters.includeUseragentFile.database"),
    (lambda p: p.__setitem__("excludeUseragents", "bot"), "parameters.excludeUseragents"),
    (lambda p: p.__setitem__("includeUseragents", [1]), "parameters.includeUseragents"),
], ids=["file-missing", "file-not-an-object", "wrong-database-name", "custom-list-not-a-list", "custom-list-not-strings"])
def test_bad_config_names_the_parameter_and_the_fix(change: Any, key: str) -> None:
    parameters = config_parameters()
    change(parameters)
    with pytest.raises(EnrichmentConfigError) as error:
        IabSpidersAndRobots.from_config(parameters, FolderAssets(DATA))
    assert error.value.key == f"iab_spiders_and_robots_enrichment.{key}"
    assert error.value.fix


def test_unreadable_or_malformed_files_are_config_errors(tmp_path: Path) -> None:
    for name in ("include_current.txt", "exclude_current.txt"):
        shutil.copy(DATA / name, tmp_path / name)
    with pytest.raises(EnrichmentConfigError) as missing:
        IabSpidersAndRobots.from_config(config_parameters(), FolderAssets(tmp_path))
    assert missing.value.key == "iab_spiders_and_robots_enrichment.parameters.ipFile"
    (tmp_path / "ip_exclude_current_cidr.txt").write_text("192.0.2.0/24\nnot an address\n")
    with pytest.raises(EnrichmentConfigError) as malformed:
        IabSpidersAndRobots.from_config(config_parameters(), FolderAssets(tmp_path))
    assert "line 2" in malformed.value.problem


def test_files_are_read_as_latin1(tmp_path: Path) -> None:
    for name in ("ip_exclude_current_cidr.txt", "include_current.txt"):
        shutil.copy(DATA / name, tmp_path / name)
    (tmp_path / "exclude_current.txt").write_bytes("r\xe9sumebot|1||0|2|0\n".encode("latin-1"))
    iab = IabSpidersAndRobots.from_config(config_parameters(), FolderAssets(tmp_path))
    assert classify(iab, "Mozilla/5.0 RÉSUMEBOT", "8.8.8.8")["reason"] == "FAILED_UA_EXCLUDE"  # type: ignore[index]


@pytest.mark.parametrize(("text", "expected"), [
    ("203.0.113.9", "203.0.113.9"), (" 203.0.113.9 ", "203.0.113.9"), ("203.0.113.9:80", "203.0.113.9"),
    ("2001:db8::1", "2001:db8::1"), ("[2001:db8::1]", "2001:db8::1"), ("[2001:db8::1]:443", "2001:db8::1"),
    ("::ffff:203.0.113.9", "203.0.113.9"), ("localhost", None), ("203.0.113.x", None), ("", None), (None, None),
], ids=["v4", "v4-spaces", "v4-port", "v6", "v6-brackets", "v6-port", "v4-mapped", "hostname-not-resolved",
        "anonymised", "empty", "none"])
def test_parse_ip_never_uses_dns(text: str | None, expected: str | None) -> None:
    address = parse_ip(text)
    assert (str(address) if address is not None else None) == expected


_networks = st.one_of(
    st.builds(lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv4Address(a)}/{p}", strict=False),
              st.integers(0, 2**32 - 1), st.integers(8, 32)),
    st.builds(lambda a, p: ipaddress.ip_network(f"{ipaddress.IPv6Address(a)}/{p}", strict=False),
              st.integers(0, 2**128 - 1), st.integers(16, 128)),
)
_addresses = st.one_of(st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
                       st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address))


@given(st.lists(_networks, max_size=12), st.lists(_addresses, max_size=12))
def test_ip_ranges_agree_with_plain_membership(networks: list[Any], addresses: list[Any]) -> None:
    ranges = IpRanges(str(network) for network in networks)
    probes = addresses + [network.network_address for network in networks] + [network.broadcast_address for network in networks]
    for address in probes:
        assert (address in ranges) == any(address.version == n.version and address in n for n in networks)


_ua_text = st.text(alphabet="abcdeBOT/ .", max_size=30)


@given(st.lists(st.tuples(_ua_text, st.booleans(), st.booleans()), max_size=15), _ua_text)
def test_indexed_lookup_agrees_with_scanning_every_record(records: list[tuple[str, bool, bool]], useragent: str) -> None:
    from plowline.enrich.enrichments.iab_spiders_and_robots import ExcludeRecord, IncludeRecord

    includes = [IncludeRecord(pattern.lower(), active, start, None) for pattern, active, start in records]
    excludes = [ExcludeRecord(pattern.lower(), True, (), "0", start, None) for pattern, _, start in records]
    iab = IabSpidersAndRobots(IpRanges([]), includes, excludes)
    facts = iab._useragent_facts(useragent.lower())
    assert facts.includes == tuple(record for record in includes if record.matches(useragent.lower()))
    assert facts.exclude == next((record for record in excludes if record.matches(useragent.lower())), None)
