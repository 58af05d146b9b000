"""ENRICHMENTS: every enrichment is registered under its Snowplow config name and meets the protocol."""

from __future__ import annotations

import inspect

import pytest

from plowline.enrich.enrichments import ENRICHMENTS
from plowline.errors import UnknownComponent
from plowline.schema_key import SchemaCriterion

MINE = ["anon_ip", "campaign_attribution", "cross_navigation_config", "event_fingerprint_config", "ip_lookups",
        "referer_parser", "ua_parser_config", "user_agent_utils_config"]


def test_names() -> None:
    assert set(MINE) <= set(ENRICHMENTS.names())


@pytest.mark.parametrize("name", ENRICHMENTS.names())
def test_each_class_meets_the_protocol(name: str) -> None:
    enrichment = ENRICHMENTS.get(name)
    assert enrichment.config_name == name
    assert isinstance(enrichment.supported_schema, SchemaCriterion)
    assert enrichment.supported_schema.name == name
    assert inspect.ismethod(enrichment.from_config)  # a classmethod
    assert callable(enrichment.enrich)
    module = inspect.getmodule(enrichment)
    assert module is not None and module.__doc__ and "\n" not in module.__doc__.split("\n\n")[0].strip()


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownComponent, match="known: anon_ip, "):
        ENRICHMENTS.get("weather_enrichment_config")
