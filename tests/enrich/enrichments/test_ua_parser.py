"""ua_parser_config: ua_parser_context for Snowplow's vectors, custom regexes, caching, config errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plowline.enrich.assets import LocalAssetStore
from plowline.enrich.enrichments.ua_parser import UA_PARSER_CONTEXT, UaParserConfig
from plowline.enrich.errors import EnrichmentConfigError
from tests.enrich.enrichments.support import (
    TEST_DATA,
    NoAssets,
    raw_event,
    valid_parameters,
    validate_entity,
    web_event,
)

SCHEMA = "iglu:com.snowplowanalytics.snowplow/ua_parser_config/jsonschema/1-0-1"
FIREFOX_12 = "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:12.0) Gecko/20100101 Firefox/12.0"


def context(**data: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "useragentFamily": "Other", "useragentMajor": None, "useragentMinor": None, "useragentPatch": None,
        "useragentVersion": "Other", "osFamily": "Other", "osMajor": None, "osMinor": None, "osPatch": None,
        "osPatchMinor": None, "osVersion": "Other", "deviceFamily": "Other",
    }
    return {"schema": UA_PARSER_CONTEXT, "data": {**base, **data}}


# Expected entities of Snowplow's enrich tests (ua-parser's current uap-core regexes give the same).
VECTORS = {
    "desktop firefox": (FIREFOX_12, context(
        useragentFamily="Firefox", useragentMajor="12", useragentMinor="0", useragentVersion="Firefox 12.0",
        osFamily="Windows", osMajor="7", osVersion="Windows 7")),
    "mobile safari": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 5_1_1 like Mac OS X) AppleWebKit/534.46 (KHTML, like Gecko) "
        "Version/5.1 Mobile/9B206 Safari/7534.48.3",
        context(useragentFamily="Mobile Safari", useragentMajor="5", useragentMinor="1",
                useragentVersion="Mobile Safari 5.1", osFamily="iOS", osMajor="5", osMinor="1", osPatch="1",
                osVersion="iOS 5.1.1", deviceFamily="iPhone")),
    "desktop safari": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10) AppleWebKit/600.1.25 (KHTML, like Gecko) Version/8.0 "
        "Safari/600.1.25",
        context(useragentFamily="Safari", useragentMajor="8", useragentMinor="0", useragentVersion="Safari 8.0",
                osFamily="Mac OS X", osMajor="10", osMinor="10", osVersion="Mac OS X 10.10", deviceFamily="Mac")),
    "linux firefox": (
        "Mozilla/5.0 (X11; Linux x86_64; rv:72.0) Gecko/20100101 Firefox/72.0",
        context(useragentFamily="Firefox", useragentMajor="72", useragentMinor="0", useragentVersion="Firefox 72.0",
                osFamily="Linux", osVersion="Linux")),
    "nothing recognised": ("", context()),
}


@pytest.fixture(scope="module")
def built_in() -> UaParserConfig:
    return UaParserConfig.from_config(valid_parameters(SCHEMA, {}), NoAssets())


@pytest.mark.parametrize(("useragent", "expected"), list(VECTORS.values()), ids=list(VECTORS))
def test_snowplow_vectors(built_in: UaParserConfig, useragent: str, expected: dict[str, Any]) -> None:
    entities = built_in.enrich(web_event(useragent=useragent), raw_event())
    assert entities == (expected,)
    validate_entity(entities[0])


def test_no_useragent_no_entity(built_in: UaParserConfig) -> None:
    assert built_in.enrich(web_event(), raw_event()) == ()


def test_cached_and_fresh_per_event(built_in: UaParserConfig) -> None:
    useragent = "Mozilla/5.0 (cache test) Gecko/20100101 Firefox/99.0"
    first = built_in.enrich(web_event(useragent=useragent), raw_event())[0]
    first["data"]["useragentFamily"] = "changed by a later step"
    before = built_in.context_data.cache_info().hits  # type: ignore[attr-defined]
    second = built_in.enrich(web_event(useragent=useragent), raw_event())[0]
    assert second["data"]["useragentFamily"] == "Firefox"
    assert built_in.context_data.cache_info().hits == before + 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("database", ["regexes.yaml", "regexes.json"])
def test_custom_regexes(database: str) -> None:
    folder = TEST_DATA / "ua_parser"
    parameters = valid_parameters(SCHEMA, {"database": database, "uri": f"file://{folder}"})
    custom = UaParserConfig.from_config(parameters, LocalAssetStore(folder, folder))
    (entity,) = custom.enrich(web_event(useragent="PlowlineBot/1.2.3 (PlowOS 4.5.6.7; PlowPhone)"), raw_event())
    assert entity == context(
        useragentFamily="PlowlineBot", useragentMajor="1", useragentMinor="2", useragentPatch="3",
        useragentVersion="PlowlineBot 1.2.3", osFamily="PlowOS", osMajor="4", osMinor="5", osPatch="6",
        osPatchMinor="7", osVersion="PlowOS 4.5.6.7", deviceFamily="PlowPhone")
    (replaced,) = custom.enrich(web_event(useragent=FIREFOX_12), raw_event())
    assert replaced["data"]["useragentVersion"] == "Fox 12.0"
    assert replaced["data"]["osFamily"] == "Other"  # only the custom regexes are used


@pytest.mark.parametrize(("parameters", "key"), [
    ({"database": "regexes.yaml"}, "parameters.uri"),
    ({"uri": "file:///tmp"}, "parameters.database"),
    ({"database": "", "uri": "file:///tmp"}, "parameters.database"),
], ids=["no uri", "no database", "empty database"])
def test_half_configured_custom_database(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        UaParserConfig.from_config(parameters, NoAssets())
    assert raised.value.key == key


def test_custom_database_that_is_not_regexes(tmp_path: Path) -> None:
    (tmp_path / "regexes.yaml").write_text("user_agent_parsers: []\n")  # no os_parsers, device_parsers
    with pytest.raises(EnrichmentConfigError) as raised:
        UaParserConfig.from_config({"database": "regexes.yaml", "uri": str(tmp_path)},
                                   LocalAssetStore(tmp_path, tmp_path))
    assert raised.value.key == "parameters.database"


def test_custom_database_missing(tmp_path: Path) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        UaParserConfig.from_config({"database": "regexes.yaml", "uri": "nowhere"}, LocalAssetStore(tmp_path, tmp_path))
    assert raised.value.key == "parameters.uri"
