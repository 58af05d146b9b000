"""The Enrichment protocol, and AssetStore for the data files enrichments are configured with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from plowline.enrich.raw_event import RawEvent
from plowline.event import EnrichedEvent
from plowline.schema_key import SchemaCriterion

SelfDescribingJson = dict[str, Any]


class AssetStore(Protocol):
    """Finds the local file for an enrichment's `uri` + `database` (MaxMind databases, lists, ...)."""

    def path(self, uri: str, database: str) -> Path:
        """Return a readable local file. Raise EnrichmentConfigError naming the uri if it cannot be had."""
        ...


class Enrichment(Protocol):
    """One configurable enrichment, registered under its Snowplow config name.

    Built once at start-up from its config's `parameters`, then applied to many events, from one
    thread. `enrich` sets fields on `event` and returns derived entities (self-describing JSON
    objects, validated later by the pipeline). It raises EnrichmentFailure for this event only.
    """

    config_name: ClassVar[str]                   # Snowplow's "name", e.g. "anon_ip"
    supported_schema: ClassVar[SchemaCriterion]  # e.g. iglu:com.snowplowanalytics.snowplow/anon_ip/jsonschema/1-*-*

    @classmethod
    def from_config(cls, parameters: Mapping[str, Any], assets: AssetStore) -> Self:
        """Build from the config's `parameters`; raise EnrichmentConfigError naming the parameter and the fix."""
        ...

    def enrich(self, event: EnrichedEvent, raw: RawEvent) -> Sequence[SelfDescribingJson]:
        """Set fields on `event`; return derived entities. Raise EnrichmentFailure on failure."""
        ...
