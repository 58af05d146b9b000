"""Bad rows: failures as Snowplow self-describing JSON (iglu:com.snowplowanalytics.snowplow.badrows/...).

A bad row keeps what is needed to recover the input later. Every type lives here so that each
subsystem builds them the same way; the shapes follow Iglu Central's badrows schemas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

BADROWS_VENDOR = "iglu:com.snowplowanalytics.snowplow.badrows"
SIZE_VIOLATION = f"{BADROWS_VENDOR}/size_violation/jsonschema/1-0-0"


@dataclass(frozen=True, slots=True)
class Processor:
    """The `processor` object of every bad row: which component produced it."""

    artifact: str
    version: str

    def to_json(self) -> dict[str, str]:
        return {"artifact": self.artifact, "version": self.version}


def iso_timestamp(when: datetime | None = None) -> str:
    """Bad-row timestamps: ISO 8601 in UTC with milliseconds and a Z, as Snowplow writes them."""
    moment = (when or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def size_violation(
    processor: Processor,
    maximum_allowed_size_bytes: int,
    actual_size_bytes: int,
    expectation: str,
    payload: str,
    when: datetime | None = None,
) -> bytes:
    """A `size_violation` bad row (1-0-0): a collector payload too large for its sink."""
    row: dict[str, Any] = {
        "schema": SIZE_VIOLATION,
        "data": {
            "processor": processor.to_json(),
            "failure": {
                "timestamp": iso_timestamp(when),
                "maximumAllowedSizeBytes": maximum_allowed_size_bytes,
                "actualSizeBytes": actual_size_bytes,
                "expectation": f"oversized collector payload: {expectation}",
            },
            "payload": payload,
        },
    }
    return orjson.dumps(row)
