"""Enrich's failures. Each is a value the pipeline turns into a bad row; none is logged and dropped.

    PermanentError
    ├── PayloadFormatViolation  the raw record is not a usable CollectorPayload → collector_payload_format_violation
    ├── AdapterFailure          the adapter cannot make events of it → adapter_failures / tracker_protocol_violations
    └── EnrichmentFailure       an enrichment failed for this event → enrichment_failures
    ConfigError
    └── EnrichmentConfigError   an enrichment's JSON config is unusable (start-up, names the parameter)
"""

from __future__ import annotations

from typing import Any

from plowline.errors import ConfigError, PermanentError


class PayloadFormatViolation(PermanentError):
    """The raw record cannot be read. `message` is the bad row's failure message object:
    `{"error": "..."}` or `{"payloadField": ..., "value": ..., "expectation": ...}`."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(str(message.get("error") or message.get("expectation") or message))
        self.message = message


class AdapterFailure(PermanentError):
    """An adapter refused a payload. `messages` are Snowplow's adapter failure objects:
    `{"field", "value", "expectation"}`, `{"field", "value", "error"}` (NotJson),
    `{"json", "error"}` (NotIglu), `{"schemaKey", "schemaCriterion"}`, `{"schemaKey", "error"}`."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(m.get("expectation") or m.get("error") or m) for m in messages))
        self.messages = messages


class EnrichmentFailure(PermanentError):
    """An enrichment failed for one event. `messages` are `{"field", "value", "expectation"}` or
    `{"error": "..."}` objects; the pipeline adds which enrichment it was."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(m.get("expectation") or m.get("error") or m) for m in messages))
        self.messages = messages


class EnrichmentConfigError(ConfigError):
    """An enrichment configuration that cannot work, found at start-up."""


class EventDropped(Exception):
    """Raised by an enrichment (the JavaScript enrichment's `drop()`) to discard the event on purpose.

    Not an error: the pipeline counts it in a metric, as Snowplow's enrich does, and emits nothing.
    """
