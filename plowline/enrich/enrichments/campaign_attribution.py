"""campaign_attribution: mkt_medium/source/term/content/campaign and mkt_clickid/network from the page URL query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.enrich.transform import tsv_safe
from plowline.enrich.urls import query_params
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = ["DEFAULT_CLICK_IDS", "FIELDS", "CampaignAttribution"]

#: Config field → event field; all five are required by the schema.
FIELDS = {
    "mktMedium": "mkt_medium",
    "mktSource": "mkt_source",
    "mktTerm": "mkt_term",
    "mktContent": "mkt_content",
    "mktCampaign": "mkt_campaign",
}
#: Click id parameter → ad network, always on; `mktClickId` in the config adds to and overrides these.
DEFAULT_CLICK_IDS = {"gclid": "Google", "msclkid": "Microsoft", "dclid": "DoubleClick"}


def _names(fields: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = fields.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise EnrichmentConfigError(f"parameters.fields.{key}", "must be a list of query parameter names",
                                    f'set "{key}": ["utm_{key[3:].lower()}"] (or [] to leave it out)')
    return tuple(value)


class CampaignAttribution:
    """campaign_attribution 1-0-*: `fields` {mktMedium, mktSource, mktTerm, mktContent, mktCampaign: [names],
    mktClickId: {name: network}}.

    For each field the first configured name present in the query wins (config order, an empty value
    counts); values are form-decoded.
    """

    config_name: ClassVar[str] = "campaign_attribution"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow/campaign_attribution/jsonschema/1-0-*")

    def __init__(self, parameters: Mapping[str, Sequence[str]], click_ids: Mapping[str, str] | None = None) -> None:
        self.parameters = tuple((FIELDS[key], tuple(parameters.get(key, ()))) for key in FIELDS)
        self.click_ids = tuple({**DEFAULT_CLICK_IDS, **(click_ids or {})}.items())
        # Any configured name, to skip events whose query carries none of them without more work.
        self._interesting = frozenset(name for _, names in self.parameters for name in names) | frozenset(
            name for name, _ in self.click_ids)

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        fields = parameters.get("fields")
        if not isinstance(fields, Mapping):
            raise EnrichmentConfigError("parameters.fields", "is missing",
                                        "set fields with mktMedium, mktSource, mktTerm, mktContent, mktCampaign")
        unknown = sorted(set(fields) - set(FIELDS) - {"mktClickId"})
        if unknown:
            raise EnrichmentConfigError(f"parameters.fields.{unknown[0]}", "is not a campaign field",
                                        f"use {', '.join(FIELDS)} and mktClickId")
        names = {key: _names(fields, key) for key in FIELDS}
        click_ids = fields.get("mktClickId") or {}
        if not isinstance(click_ids, Mapping) or not all(isinstance(v, str) for v in click_ids.values()):
            raise EnrichmentConfigError("parameters.fields.mktClickId", "must map parameter names to network names",
                                        'write "mktClickId": {"gclid": "Google"}')
        return cls(names, click_ids)

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        query = event.page_urlquery
        if not query:
            return ()
        found = query_params(query)
        if self._interesting.isdisjoint(found):
            return ()
        for field, names in self.parameters:
            for name in names:
                value = found.get(name)
                if value is not None:
                    setattr(event, field, tsv_safe(value))
                    break
        for name, network in self.click_ids:
            value = found.get(name)
            if value is not None:
                event.mkt_clickid = tsv_safe(value)
                event.mkt_network = network
                break
        return ()
