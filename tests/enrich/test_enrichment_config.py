"""Enrichment config loading: directory, container, disabled, unknown, every error reported together, defaults."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest
from structlog.testing import capture_logs

from plowline.enrich.assets import BUILTIN_URI
from plowline.enrich.enrichment_config import (
    DEFAULT_ENRICHMENTS_DIR,
    EnrichmentConfigErrors,
    build_enrichments,
    default_enrichment_configs,
    load_enrichments,
    read_enrichment_configs,
)
from plowline.enrich.enrichments import ENRICHMENTS
from plowline.enrich.enrichments.anon_ip import AnonIp
from plowline.enrich.enrichments.base import AssetStore, Enrichment, SelfDescribingJson
from plowline.enrich.enrichments.campaign_attribution import CampaignAttribution
from plowline.enrich.enrichments.cross_navigation import CrossNavigation
from plowline.enrich.enrichments.event_fingerprint import EventFingerprint
from plowline.enrich.enrichments.referer_parser import RefererParser
from plowline.enrich.enrichments.ua_parser import UaParserConfig
from plowline.enrich.enrichments.user_agent_utils import UserAgentUtilsConfig
from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.registry import Registry
from plowline.schema_key import SchemaCriterion
from tests.enrich.enrichments.support import NoAssets, config, offline_resolver

SP = "iglu:com.snowplowanalytics.snowplow"
UTM = {"mktMedium": ["utm_medium"], "mktSource": ["utm_source"], "mktTerm": ["utm_term"],
       "mktContent": ["utm_content"], "mktCampaign": ["utm_campaign"]}
GOOD = {
    "anon_ip.json": config(f"{SP}/anon_ip/jsonschema/1-0-1", {"anonOctets": 2}),
    "campaign_attribution.json": config(f"{SP}/campaign_attribution/jsonschema/1-0-1", {"fields": UTM}),
    "cross_navigation_config.json": config(
        "iglu:com.snowplowanalytics.snowplow.enrichments/cross_navigation_config/jsonschema/1-0-0", None),
    "event_fingerprint_config.json": config(f"{SP}/event_fingerprint_config/jsonschema/1-0-1",
                                            {"hashAlgorithm": "SHA256", "excludeParameters": ["eid"]}),
    "referer_parser.json": config(f"{SP}/referer_parser/jsonschema/2-0-1",
                                  {"internalDomains": ["www.example.com"], "database": "referers.json",
                                   "uri": BUILTIN_URI}),
    "ua_parser_config.json": config(f"{SP}/ua_parser_config/jsonschema/1-0-0", None),
}


def write(folder: Path, files: Mapping[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, document in files.items():
        (folder / name).write_text(document if isinstance(document, str) else json.dumps(document))
    return folder


def load(source: Path | None) -> dict[str, Enrichment]:
    return load_enrichments(source, offline_resolver(), cache_dir=Path("/nonexistent-cache"))


def problems_of(source: Path) -> list[tuple[str, str]]:
    with pytest.raises(EnrichmentConfigErrors) as raised:
        load(source)
    return [(Path(p.source).name, p.key) for p in raised.value.problems]


def test_directory_of_snowplow_configs(tmp_path: Path) -> None:
    built = load(write(tmp_path / "enrichments", GOOD))
    assert {name: type(e) for name, e in built.items()} == {
        "anon_ip": AnonIp, "campaign_attribution": CampaignAttribution, "cross_navigation_config": CrossNavigation,
        "event_fingerprint_config": EventFingerprint, "referer_parser": RefererParser,
        "ua_parser_config": UaParserConfig}
    anon = built["anon_ip"]
    assert isinstance(anon, AnonIp) and (anon.octets, anon.segments) == (2, 2)
    fingerprint = built["event_fingerprint_config"]
    assert isinstance(fingerprint, EventFingerprint) and fingerprint.algorithm_name == "SHA256"


def test_container_file(tmp_path: Path) -> None:
    container = {"schema": f"{SP}/enrichments/jsonschema/1-0-0", "data": list(GOOD.values())}
    path = tmp_path / "enrichments.json"
    path.write_text(json.dumps(container))
    assert sorted(load(path)) == sorted(document["data"]["name"] for document in GOOD.values())


def test_container_that_is_invalid(tmp_path: Path) -> None:
    path = tmp_path / "enrichments.json"
    path.write_text(json.dumps({"schema": f"{SP}/enrichments/jsonschema/1-0-0", "data": {"not": "an array"}}))
    with pytest.raises(EnrichmentConfigErrors) as raised:
        load(path)
    assert [p.key for p in raised.value.problems] == ["enrichments"]


def test_container_items_are_named_by_index(tmp_path: Path) -> None:
    bad_anon = config(f"{SP}/anon_ip/jsonschema/1-0-1", {"anonOctets": 9})
    path = tmp_path / "enrichments.json"
    path.write_text(json.dumps({"schema": f"{SP}/enrichments/jsonschema/1-0-0",
                                "data": [GOOD["ua_parser_config.json"], bad_anon]}))
    with pytest.raises(EnrichmentConfigErrors) as raised:
        load(path)
    assert [(Path(p.source).name, p.key) for p in raised.value.problems] == [
        ("enrichments.json[1]", "anon_ip.parameters.anonOctets")]


def test_disabled_configs_are_skipped(tmp_path: Path) -> None:
    disabled = {**GOOD}
    disabled["anon_ip.json"] = config(f"{SP}/anon_ip/jsonschema/1-0-1", {"anonOctets": 2})
    disabled["anon_ip.json"]["data"]["enabled"] = False
    assert "anon_ip" not in load(write(tmp_path, disabled))


def test_unknown_enrichments_are_ignored_with_a_warning(tmp_path: Path) -> None:
    currency = config(f"{SP}/currency_conversion_config/jsonschema/1-0-0", {
        "apiKey": "k", "baseCurrency": "EUR", "rateAt": "EOD_PRIOR", "accountType": "DEVELOPER"})
    with capture_logs() as logs:
        built = load(write(tmp_path, {"currency.json": currency, "ua.json": GOOD["ua_parser_config.json"]}))
    assert sorted(built) == ["ua_parser_config"]
    (warning,) = [log for log in logs if log["log_level"] == "warning"]
    assert warning["event"] == "unknown enrichment ignored"
    assert warning["enrichment"] == "currency_conversion_config"
    assert warning["source"].endswith("currency.json")


def test_every_problem_of_every_file_is_reported_together(tmp_path: Path) -> None:
    files: dict[str, Any] = {
        "a_anon_ip.json": config(f"{SP}/anon_ip/jsonschema/1-0-1", {"anonOctets": 7, "anonSegments": 0}),
        "b_campaign.json": config(f"{SP}/campaign_attribution/jsonschema/1-0-1",
                                  {"fields": {k: v for k, v in UTM.items() if k != "mktTerm"}}),
        "c_referers.json": config(f"{SP}/referer_parser/jsonschema/2-0-1",
                                  {"internalDomains": [], "database": "missing.json", "uri": "file:dbs"}),
        "d_broken.json": "{not json",
        "e_not_sdj.json": {"name": "anon_ip"},
        "f_legacy_ip_lookups.json": {"schema": f"{SP}/ip_lookups/jsonschema/1-0-0", "data": {
            "vendor": "com.snowplowanalytics.snowplow", "name": "ip_lookups", "enabled": True,
            "parameters": {"geo": {"database": "GeoLiteCity.dat", "uri": "http://example.com/maxmind"}}}},
        "g_no_schema.json": config("iglu:com.acme/nothing/jsonschema/1-0-0", {}),
        "h_ua.json": GOOD["ua_parser_config.json"],
    }
    with pytest.raises(EnrichmentConfigErrors) as raised:
        load(write(tmp_path, files))
    found = sorted((Path(p.source).name, p.key) for p in raised.value.problems)
    assert found == [
        ("a_anon_ip.json", "anon_ip.parameters.anonOctets"),
        ("a_anon_ip.json", "anon_ip.parameters.anonSegments"),
        ("b_campaign.json", "campaign_attribution.parameters.fields.mktTerm"),
        ("c_referers.json", "referer_parser.parameters.uri"),
        ("d_broken.json", "(file)"),
        ("e_not_sdj.json", "schema"),
        ("f_legacy_ip_lookups.json", "schema"),
        ("g_no_schema.json", "schema"),
    ]
    message = str(raised.value)
    assert message.startswith("enrichments: 8 problems in the enrichment configs:")
    assert all(str(tmp_path / name) in message for name, _ in found)
    assert "(fix: " in message
    by_file = {Path(p.source).name: p for p in raised.value.problems}
    assert by_file["b_campaign.json"].problem == "is missing but it is required"
    assert "is not a version Plowline's ip_lookups supports" in by_file["f_legacy_ip_lookups.json"].problem
    assert "iglu:com.acme/nothing/jsonschema/1-0-0 was not found" in by_file["g_no_schema.json"].problem


def test_the_same_enrichment_twice(tmp_path: Path) -> None:
    files = {"one.json": GOOD["anon_ip.json"], "two.json": GOOD["anon_ip.json"]}
    assert problems_of(write(tmp_path, files)) == [("two.json", "schema")]


@pytest.mark.parametrize(("make", "key"), [
    (lambda root: root / "missing", "(path)"),
    (lambda root: write(root / "empty", {}), "(directory)"),
], ids=["missing path", "empty directory"])
def test_bad_source(tmp_path: Path, make: Any, key: str) -> None:
    with pytest.raises(EnrichmentConfigErrors) as raised:
        read_enrichment_configs(make(tmp_path))
    assert [p.key for p in raised.value.problems] == [key]


def test_non_json_files_and_hidden_files_are_not_configs(tmp_path: Path) -> None:
    folder = write(tmp_path, {"ua.json": GOOD["ua_parser_config.json"], "README.md": "# notes",
                              ".backup.json": "{broken"})
    assert [Path(where).name for where, _ in read_enrichment_configs(folder)] == ["ua.json"]


class Recorder:
    """A stand-in enrichment that remembers the parameters it was built with."""

    config_name: ClassVar[str] = "pii_enrichment_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-*")
    seen: ClassVar[list[Mapping[str, Any]]] = []

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        cls.seen.append(parameters)
        return cls()

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        return ()


def test_keys_beside_parameters_reach_the_enrichment() -> None:
    pii = config("iglu:com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config/jsonschema/2-0-1",
                 {"pii": [{"pojo": {"field": "user_id"}}],
                  "strategy": {"pseudonymize": {"hashFunction": "SHA-256", "salt": "pepper"}}},
                 emitEvent=False, anonymousOnly=True)
    registry: Registry[type[Enrichment]] = Registry("enrichment", [("pii_enrichment_config", Recorder)])
    built = build_enrichments([("pii.json", pii)], offline_resolver(), NoAssets(), registry)
    assert isinstance(built["pii_enrichment_config"], Recorder)
    assert Recorder.seen[-1]["anonymousOnly"] is True and Recorder.seen[-1]["pii"] == [{"pojo": {"field": "user_id"}}]


def test_default_set() -> None:
    configs = default_enrichment_configs()
    assert sorted(c["data"]["name"] for c in configs) == [
        "campaign_attribution", "event_fingerprint_config", "referer_parser", "ua_parser_config",
        "user_agent_utils_config"]
    for document in configs:
        offline_resolver().validate_sdj(document)
        assert ENRICHMENTS.get(document["data"]["name"]).supported_schema.matches(
            offline_resolver().validate_sdj(document).key)
    configs[0]["data"]["enabled"] = False  # callers get copies
    assert all(c["data"]["enabled"] for c in default_enrichment_configs())
    built = load(None)
    assert {name: type(e) for name, e in built.items()} == {
        "campaign_attribution": CampaignAttribution, "event_fingerprint_config": EventFingerprint,
        "referer_parser": RefererParser, "ua_parser_config": UaParserConfig,
        "user_agent_utils_config": UserAgentUtilsConfig}
    fingerprint = built["event_fingerprint_config"]
    assert isinstance(fingerprint, EventFingerprint)
    assert (fingerprint.algorithm_name, fingerprint.excluded) == ("MD5", frozenset({"eid", "nuid", "stm", "cv"}))


def test_default_directory_is_a_usable_config_directory() -> None:
    assert sorted(load(DEFAULT_ENRICHMENTS_DIR)) == sorted(load(None))
