"""ENRICHMENTS: Snowplow enrichment config name → enrichment class, one line each."""

from __future__ import annotations

from plowline.enrich.enrichments.anon_ip import AnonIp
from plowline.enrich.enrichments.base import Enrichment
from plowline.enrich.enrichments.campaign_attribution import CampaignAttribution
from plowline.enrich.enrichments.cookie_extractor import CookieExtractor
from plowline.enrich.enrichments.cross_navigation import CrossNavigation
from plowline.enrich.enrichments.event_fingerprint import EventFingerprint
from plowline.enrich.enrichments.http_header_extractor import HttpHeaderExtractor
from plowline.enrich.enrichments.iab_spiders_and_robots import IabSpidersAndRobots
from plowline.enrich.enrichments.ip_lookups import IpLookups
from plowline.enrich.enrichments.javascript_script import JavascriptScript
from plowline.enrich.enrichments.pii_pseudonymization import PiiPseudonymization
from plowline.enrich.enrichments.referer_parser import RefererParser
from plowline.enrich.enrichments.ua_parser import UaParserConfig
from plowline.enrich.enrichments.user_agent_utils import UserAgentUtilsConfig
from plowline.registry import Registry

__all__ = ["ENRICHMENTS"]

_CLASSES: list[type[Enrichment]] = [
    AnonIp,                 # anon_ip
    CampaignAttribution,    # campaign_attribution
    CookieExtractor,        # cookie_extractor_config
    CrossNavigation,        # cross_navigation_config
    EventFingerprint,       # event_fingerprint_config
    HttpHeaderExtractor,    # http_header_extractor_config
    IabSpidersAndRobots,    # iab_spiders_and_robots_enrichment
    IpLookups,              # ip_lookups
    JavascriptScript,       # javascript_script_config
    PiiPseudonymization,    # pii_enrichment_config
    RefererParser,          # referer_parser
    UaParserConfig,         # ua_parser_config
    UserAgentUtilsConfig,   # user_agent_utils_config
]

#: Looked up by the `name` of a Snowplow enrichment config schema; mypy checks each class against Enrichment.
ENRICHMENTS: Registry[type[Enrichment]] = Registry("enrichment", ((cls.config_name, cls) for cls in _CLASSES))
