"""The embedded schemas are exactly the listed ones, each identical to Iglu Central's, and each usable."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import orjson
import pytest

from plowline.iglu.resolver import Resolver
from plowline.schema_key import SchemaKey
from tests.iglu.conftest import IGLU_CENTRAL

SCHEMAS = Path(str(resources.files("plowline.iglu").joinpath("schemas")))

# (vendor/name, versions): what the pipeline itself validates or emits. None = every version in the snapshot.
EMBEDDED: dict[str, list[str] | None] = {
    # Iglu itself
    "com.snowplowanalytics.self-desc/schema": ["1-0-0"],
    "com.snowplowanalytics.iglu/resolver-config": ["1-0-0", "1-0-1", "1-0-2", "1-0-3"],
    "com.snowplowanalytics.iglu/validation_info": ["1-0-0"],
    # tracker protocol wrappers and the raw record
    "com.snowplowanalytics.snowplow/payload_data": ["1-0-0", "1-0-1", "1-0-2", "1-0-3", "1-0-4"],
    "com.snowplowanalytics.snowplow/contexts": ["1-0-0", "1-0-1"],
    "com.snowplowanalytics.snowplow/unstruct_event": ["1-0-0"],
    "com.snowplowanalytics.snowplow/CollectorPayload": ["1-0-0"],  # format thrift
    "com.snowplowanalytics.snowplow/atomic": ["1-0-0"],
    "com.snowplowanalytics.snowplow/uri_redirect": ["1-0-0"],
    # enrichment configs
    "com.snowplowanalytics.snowplow/enrichments": ["1-0-0"],
    "com.snowplowanalytics.snowplow/anon_ip": None,
    "com.snowplowanalytics.snowplow/ip_lookups": None,
    "com.snowplowanalytics.snowplow/ua_parser_config": None,
    "com.snowplowanalytics.snowplow/referer_parser": None,
    "com.snowplowanalytics.snowplow/campaign_attribution": None,
    "com.snowplowanalytics.snowplow/event_fingerprint_config": None,
    "com.snowplowanalytics.snowplow/cookie_extractor_config": None,
    "com.snowplowanalytics.snowplow/javascript_script_config": None,
    "com.snowplowanalytics.snowplow/currency_conversion_config": None,
    "com.snowplowanalytics.snowplow/user_agent_utils_config": None,
    "com.snowplowanalytics.snowplow.enrichments/asn_lookups": None,
    "com.snowplowanalytics.snowplow.enrichments/bot_detection_enrichment_config": None,
    "com.snowplowanalytics.snowplow.enrichments/cross_navigation_config": None,
    "com.snowplowanalytics.snowplow.enrichments/http_header_extractor_config": None,
    "com.snowplowanalytics.snowplow.enrichments/iab_spiders_and_robots_enrichment": None,
    "com.snowplowanalytics.snowplow.enrichments/pii_enrichment_config": None,
    "com.snowplowanalytics.snowplow.enrichments/yauaa_enrichment_config": None,
    # derived contexts and entities enrichments emit
    "com.snowplowanalytics.snowplow/ua_parser_context": None,
    "com.snowplowanalytics.snowplow/cross_navigation": None,
    "com.snowplowanalytics.snowplow/asn": None,
    "com.snowplowanalytics.snowplow/bot_detection": None,
    "com.snowplowanalytics.snowplow/pii_transformation": None,
    "com.snowplowanalytics.snowplow/failure": None,
    "com.iab.snowplow/spiders_and_robots": None,
    "org.ietf/http_cookie": None,
    "org.ietf/http_header": None,
    "nl.basjes/yauaa_context": None,
}
BADROWS = "com.snowplowanalytics.snowplow.badrows"  # every bad-row schema, every version


def expected_files() -> set[str]:
    files = {str(path.relative_to(IGLU_CENTRAL / "schemas"))
             for path in (IGLU_CENTRAL / "schemas" / BADROWS).glob("*/*/*")}
    for vendor_name, versions in EMBEDDED.items():
        for folder in (IGLU_CENTRAL / "schemas" / vendor_name).iterdir():
            for file in folder.iterdir():
                if versions is None or file.name in versions:
                    files.add(f"{vendor_name}/{folder.name}/{file.name}")
    return files


def embedded_files() -> set[str]:
    return {str(path.relative_to(SCHEMAS)) for path in SCHEMAS.glob("*/*/*/*") if path.is_file()}


def test_exactly_the_listed_schemas_are_embedded() -> None:
    assert embedded_files() == expected_files()


@pytest.mark.parametrize("relative", sorted(embedded_files()))
def test_embedded_schema_is_identical_to_iglu_central(relative: str) -> None:
    ours = (SCHEMAS / relative).read_bytes()
    theirs = (IGLU_CENTRAL / "schemas" / relative).read_bytes()
    assert ours == theirs or orjson.loads(ours) == orjson.loads(theirs)
    vendor, name, fmt, version = relative.split("/")
    assert orjson.loads(ours)["self"] == {"vendor": vendor, "name": name, "format": fmt, "version": version}


def test_every_embedded_jsonschema_compiles_offline() -> None:
    resolver = Resolver([])  # embedded only: any network need would fail here
    for relative in sorted(embedded_files()):
        vendor, name, fmt, version = relative.split("/")
        if fmt == "jsonschema":
            resolver.compiled(SchemaKey.parse(f"iglu:{vendor}/{name}/{fmt}/{version}"))


def test_notice_is_shipped() -> None:
    notice = (SCHEMAS / "README.md").read_text()
    assert "Iglu Central" in notice and "Apache" in notice
