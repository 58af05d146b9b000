"""campaign_attribution: mkt_* from the page URL query (config order wins, form decoding, click ids)."""

from __future__ import annotations

from typing import Any

import pytest

from plowline.enrich.enrichments.campaign_attribution import CampaignAttribution
from plowline.enrich.errors import EnrichmentConfigError
from tests.enrich.enrichments.support import NoAssets, raw_event, valid_parameters, web_event

SCHEMA = "iglu:com.snowplowanalytics.snowplow/campaign_attribution/jsonschema/1-0-1"
UTM = {"mktMedium": ["utm_medium"], "mktSource": ["utm_source"], "mktTerm": ["utm_term"],
       "mktContent": ["utm_content"], "mktCampaign": ["utm_campaign"]}
FIELDS = ("mkt_medium", "mkt_source", "mkt_term", "mkt_content", "mkt_campaign", "mkt_clickid", "mkt_network")


def attribution(**fields: Any) -> CampaignAttribution:
    parameters = valid_parameters(SCHEMA, {"mapping": "static", "fields": {**UTM, **fields}})
    return CampaignAttribution.from_config(parameters, NoAssets())


def marketing(enrichment: CampaignAttribution, page: str) -> dict[str, str | None]:
    event = web_event(page=page)
    assert enrichment.enrich(event, raw_event()) == ()
    return {name: getattr(event, name) for name in FIELDS if getattr(event, name) is not None}


CASES = {
    "all utm fields": (
        "http://x.com/?utm_source=google&utm_medium=cpc&utm_term=tarot+cards&utm_content=ad1&utm_campaign=spring",
        {"mkt_source": "google", "mkt_medium": "cpc", "mkt_term": "tarot cards", "mkt_content": "ad1",
         "mkt_campaign": "spring"}),
    "percent decoding": ("http://x.com/?utm_campaign=caf%C3%A9%20%26%20cr%C3%A8me", {"mkt_campaign": "café & crème"}),
    "no query": ("http://x.com/landing", {}),
    "unrelated parameters": ("http://x.com/?a=1&b=2", {}),
    "gclid is Google": ("http://x.com/?gclid=abc123", {"mkt_clickid": "abc123", "mkt_network": "Google"}),
    "msclkid is Microsoft": ("http://x.com/?msclkid=m1", {"mkt_clickid": "m1", "mkt_network": "Microsoft"}),
    "dclid is DoubleClick": ("http://x.com/?dclid=d1", {"mkt_clickid": "d1", "mkt_network": "DoubleClick"}),
    "first default click id wins": ("http://x.com/?dclid=d1&gclid=g1", {"mkt_clickid": "g1", "mkt_network": "Google"}),
    "a repeated parameter keeps its last value": ("http://x.com/?utm_source=a&utm_source=b", {"mkt_source": "b"}),
    "an empty value counts but stays empty": ("http://x.com/?utm_source=", {}),
    "semicolons separate pairs too": ("http://x.com/?utm_source=a;utm_medium=b", {"mkt_source": "a", "mkt_medium": "b"}),
    "fragment is not the query": ("http://x.com/#utm_source=a", {}),
}


@pytest.mark.parametrize(("page", "expected"), list(CASES.values()), ids=list(CASES))
def test_utm(page: str, expected: dict[str, str]) -> None:
    assert marketing(attribution(), page) == expected


def test_first_configured_name_wins_not_url_order() -> None:
    enrichment = attribution(mktSource=["source", "utm_source"], mktMedium=["medium", "utm_medium"])
    page = "http://x.com/?utm_source=second&source=first&utm_medium=m"
    assert marketing(enrichment, page) == {"mkt_source": "first", "mkt_medium": "m"}


def test_empty_value_of_an_earlier_name_blocks_later_names() -> None:
    enrichment = attribution(mktSource=["source", "utm_source"])
    assert marketing(enrichment, "http://x.com/?utm_source=later&source=") == {}


def test_config_click_ids_add_to_and_override_the_defaults() -> None:
    enrichment = attribution(mktClickId={"fbclid": "Facebook", "gclid": "Google Ads"})
    assert marketing(enrichment, "http://x.com/?gclid=g") == {"mkt_clickid": "g", "mkt_network": "Google Ads"}
    assert marketing(enrichment, "http://x.com/?fbclid=f") == {"mkt_clickid": "f", "mkt_network": "Facebook"}
    assert marketing(enrichment, "http://x.com/?msclkid=m") == {"mkt_clickid": "m", "mkt_network": "Microsoft"}


def test_empty_lists_turn_a_field_off() -> None:
    enrichment = attribution(mktTerm=[])
    assert marketing(enrichment, "http://x.com/?utm_term=t&utm_source=s") == {"mkt_source": "s"}


def test_tabs_in_values_are_made_tsv_safe() -> None:
    assert marketing(attribution(), "http://x.com/?utm_source=a%09b") == {"mkt_source": "a    b"}


@pytest.mark.parametrize(("parameters", "key"), [
    ({}, "parameters.fields"),
    ({"fields": {**UTM, "mktSource": "utm_source"}}, "parameters.fields.mktSource"),
    ({"fields": {k: v for k, v in UTM.items() if k != "mktCampaign"}}, "parameters.fields.mktCampaign"),
    ({"fields": {**UTM, "mktClickId": ["gclid"]}}, "parameters.fields.mktClickId"),
    ({"fields": {**UTM, "mktOther": ["x"]}}, "parameters.fields.mktOther"),
], ids=["no fields", "not a list", "required field missing", "click ids not a map", "unknown field"])
def test_bad_config_names_the_parameter(parameters: dict[str, Any], key: str) -> None:
    with pytest.raises(EnrichmentConfigError) as raised:
        CampaignAttribution.from_config(parameters, NoAssets())
    assert raised.value.key == key
