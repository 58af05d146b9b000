"""The Adapter protocol: a CollectorRequest for one vendor/version becomes raw events."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from plowline.enrich.loader import CollectorRequest
    from plowline.enrich.raw_event import RawEvent
    from plowline.iglu.resolver import Resolver


class Adapter(Protocol):
    """Knows one vendor's request format. Raises AdapterFailure for input that vendor never sends."""

    vendor: ClassVar[str]    # "com.snowplowanalytics.snowplow"
    version: ClassVar[str]   # "tp2"

    def to_raw_events(self, request: CollectorRequest, resolver: Resolver) -> list[RawEvent]:
        """One RawEvent per event in the request (a tp2 POST batch gives several)."""
        ...
