"""cross_navigation_config: the cross_navigation entity from the page URL's extended `_sp` parameter."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from plowline.enrich.enrichments.base import AssetStore, SelfDescribingJson
from plowline.enrich.errors import EnrichmentConfigError
from plowline.enrich.raw_event import RawEvent
from plowline.enrich.transform import timestamp_from_millis
from plowline.enrich.urls import parse_sp_param
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

__all__ = ["CROSS_NAVIGATION_SCHEMA", "CrossNavigation"]

CROSS_NAVIGATION_SCHEMA = "iglu:com.snowplowanalytics.snowplow/cross_navigation/jsonschema/1-0-0"


class CrossNavigation:
    """cross_navigation_config 1-0-0 (no parameters).

    `_sp=duid.tstamp.sessionId.userId.sourceId.platform.reason`: the entity needs the domain user id
    and a valid timestamp. refr_domain_userid/refr_dvce_tstamp, and the failure for a bad timestamp,
    are the pipeline's always-on cross-domain step, not this enrichment's.
    """

    config_name: ClassVar[str] = "cross_navigation_config"
    supported_schema: ClassVar[SchemaCriterion] = SchemaCriterion.parse(
        "iglu:com.snowplowanalytics.snowplow.enrichments/cross_navigation_config/jsonschema/1-0-0")

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        if parameters:
            raise EnrichmentConfigError(f"parameters.{next(iter(parameters))}",
                                        "cross_navigation_config takes no parameters", "remove parameters")
        return cls()

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        query = event.page_urlquery
        if not query or "_sp" not in query:
            return ()
        parts = parse_sp_param(query)
        if parts is None or parts.domain_user_id is None or parts.timestamp is None:
            return ()
        try:
            moment = timestamp_from_millis(int(parts.timestamp))
        except ValueError:
            return ()
        timestamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return ({"schema": CROSS_NAVIGATION_SCHEMA, "data": {
            "domain_user_id": parts.domain_user_id,
            "timestamp": timestamp,
            "session_id": parts.session_id,
            "user_id": parts.user_id,
            "source_id": parts.source_id,
            "source_platform": parts.source_platform,
            "reason": parts.reason,
        }},)
