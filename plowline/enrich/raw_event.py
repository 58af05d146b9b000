"""RawEvent: one event's tracker parameters plus its collector context, as an adapter produces it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RawEvent:
    """What an adapter makes of a CollectorPayload: parameters and the request they came with.

    `parameters` keeps insertion order; a value is None for a querystring name without `=`.
    """

    vendor: str
    version: str
    parameters: dict[str, str | None]
    content_type: str | None = None
    loader_name: str = "thrift"
    encoding: str = "UTF-8"
    hostname: str | None = None
    timestamp: int | None = None  # collector time, epoch milliseconds
    ip_address: str | None = None
    useragent: str | None = None
    referer_uri: str | None = None
    headers: list[str] = field(default_factory=list)
    user_id: str | None = None  # the collector's network_userid

    def header_values(self, name: str) -> list[str]:
        """Values of every recorded header with that name (case-insensitive)."""
        prefix = name.lower() + ":"
        return [line[len(prefix):].strip() for line in self.headers if line[: len(prefix)].lower() == prefix]

    def to_json(self) -> dict[str, Any]:
        """The `raw` part of a bad row's EnrichmentPayload (badrows RawEvent shape)."""
        from datetime import UTC, datetime

        when: str | None = None
        if self.timestamp is not None:
            try:
                moment = datetime.fromtimestamp(self.timestamp / 1000, UTC)
                when = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
            except (OverflowError, ValueError, OSError):
                when = str(self.timestamp)  # beyond what a datetime can hold: keep the number
        return {
            "vendor": self.vendor,
            "version": self.version,
            "parameters": [{"name": k, "value": v} for k, v in self.parameters.items()],
            "contentType": self.content_type,
            "loaderName": self.loader_name,
            "encoding": self.encoding,
            "hostname": self.hostname,
            "timestamp": when,
            "ipAddress": self.ip_address,
            "useragent": self.useragent,
            "refererUri": self.referer_uri,
            "headers": self.headers,
            "userId": self.user_id,
        }
