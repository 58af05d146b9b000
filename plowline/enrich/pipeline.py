"""Pure enrichment: one raw record → enriched events and bad rows. No I/O, so it is testable alone.

record → load_request → adapter → raw events → for each: phase 1 (tracker parameters, then
unstruct_event and contexts through Iglu), phase 2 (the STEPS), phase 3 (derived entities through
Iglu, atomic field lengths) → good event, bad row, or nothing when a script drops it. Every
failure is a value turned into exactly one bad row here; no exception escapes for bad input.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from plowline import badrows
from plowline.enrich.adapters import adapter_for, is_tracker_protocol
from plowline.enrich.atomic import ATOMIC_FIELD_LIMITS, ATOMIC_SCHEMA, length_violations
from plowline.enrich.enrichments.base import Enrichment
from plowline.enrich.errors import AdapterFailure, EventDropped, PayloadFormatViolation
from plowline.enrich.loader import CollectorRequest, collector_payload_json, load_request
from plowline.enrich.raw_event import RawEvent
from plowline.enrich.sdj import Extracted, extract, validate_entity
from plowline.enrich.steps import STEPS, EventState
from plowline.enrich.transform import AtomicParseError, apply_parameters, first_ip, timestamp_from_millis, tsv_safe
from plowline.event import EnrichedEvent
from plowline.iglu.resolver import Resolver


@dataclass(slots=True)
class Outcome:
    """Everything one raw record became. `events_in` counts raw events (a tp2 batch has several)."""

    good: list[EnrichedEvent] = field(default_factory=list)
    bad: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    events_in: int = 0


class Pipeline:
    """Built once per worker from the resolver and the configured enrichments."""

    def __init__(
        self,
        resolver: Resolver,
        enrichments: Mapping[str, Enrichment],
        processor: badrows.Processor,
        atomic_limits: dict[str, int] = ATOMIC_FIELD_LIMITS,
    ) -> None:
        self.resolver = resolver
        self.enrichments = enrichments
        self.processor = processor
        self.v_etl = f"{processor.artifact}-{processor.version}"
        self.atomic_limits = atomic_limits
        #: Set by the worker after a long Iglu outage: unreachable schemas become schema violations.
        self.unavailable_as_failure = False
        self.degraded_until = 0.0

    def process(self, record: bytes, etl_tstamp: datetime) -> Outcome:
        outcome = Outcome()
        try:
            request = load_request(record)
        except PayloadFormatViolation as violation:
            outcome.events_in = 1
            outcome.bad.append(
                badrows.collector_payload_format_violation(
                    self.processor, "thrift", violation.message, base64.b64encode(record).decode("ascii")
                )
            )
            return outcome
        try:
            raw_events = adapter_for(request.vendor, request.version).to_raw_events(request, self.resolver)
        except AdapterFailure as failure:
            outcome.events_in = 1
            outcome.bad.append(self._adapter_bad_row(request, failure))
            return outcome
        outcome.events_in = len(raw_events)
        default_ids = _DefaultEventIds(record)
        for index, raw in enumerate(raw_events):
            result = self.enrich_event(raw, request.collector, etl_tstamp, partial(default_ids.get, index))
            if isinstance(result, EnrichedEvent):
                outcome.good.append(result)
            elif result is None:
                outcome.dropped += 1
            else:
                outcome.bad.append(result)
        return outcome

    def _adapter_bad_row(self, request: CollectorRequest, failure: AdapterFailure) -> dict[str, Any]:
        build = (
            badrows.tracker_protocol_violations
            if is_tracker_protocol(request.vendor, request.version)
            else badrows.adapter_failures
        )
        return build(self.processor, request.vendor, request.version, failure.messages, collector_payload_json(request))

    def enrich_event(
        self,
        raw: RawEvent,
        collector: str,
        etl_tstamp: datetime,
        default_event_id: str | Callable[[], str] | None = None,
    ) -> EnrichedEvent | dict[str, Any] | None:
        """One raw event → an enriched event, a bad row, or None if an enrichment dropped it.

        `default_event_id` is the event_id (or makes it) when the tracker sent no valid `eid`
        (random if not given).
        """
        event = EnrichedEvent(
            v_collector=tsv_safe(collector),
            v_etl=self.v_etl,
            etl_tstamp=etl_tstamp,
            network_userid=raw.user_id,
            user_ipaddress=first_ip(raw.ip_address) if raw.ip_address else None,
            useragent=_clean_useragent(raw.useragent),
        )
        # Phase 1: tracker parameters, then the self-describing JSON they carry.
        parse_errors: list[AtomicParseError] = []
        if raw.timestamp is not None:
            try:
                event.collector_tstamp = timestamp_from_millis(raw.timestamp)
            except ValueError as exc:
                parse_errors.append(AtomicParseError("collector_tstamp", str(raw.timestamp), str(exc)))
        parse_errors += apply_parameters(event, raw.parameters)
        if event.event_id is None:  # no `eid`, or not a valid one
            made = default_event_id() if callable(default_event_id) else default_event_id
            event.event_id = made or str(uuid.uuid4())
        extracted = extract(raw.parameters, self.resolver, self.unavailable_as_failure)
        event.unstruct_event = extracted.unstruct_event
        event.contexts = extracted.contexts or None
        phase1 = extracted.messages + _atomic_messages(parse_errors, "atomic_field_parse_error")
        if phase1:
            return self._bad(badrows.schema_violations, phase1, event, raw)

        # Phase 2: the steps in Snowplow's order.
        state = EventState(event, raw, self.enrichments)
        event.derived_contexts = []
        try:
            for step in STEPS:
                step(state)
        except EventDropped:
            return None
        if state.failures:
            return self._bad(badrows.enrichment_failures, state.failures, event, raw)

        # Phase 3: what enrichments added, or a script changed, must be valid too.
        checked = Extracted()
        if event.unstruct_event is not extracted.unstruct_event and event.unstruct_event is not None:
            event.unstruct_event = next(iter(self._valid([event.unstruct_event], checked)), None)
        if event.contexts is not None and event.contexts != (extracted.contexts or None):
            event.contexts = self._valid(event.contexts, checked) or None
        derived = self._valid(event.derived_contexts, checked)
        event.derived_contexts = [*derived, *extracted.validation_info, *checked.validation_info] or None
        reports = length_violations(event, self.atomic_limits)
        phase3 = checked.messages + ([_atomic_error(reports)] if reports else [])
        if phase3:
            return self._bad(badrows.schema_violations, phase3, event, raw)
        return event

    def _valid(self, entities: list[dict[str, Any]], checked: Extracted) -> list[dict[str, Any]]:
        """The entities that validate (as rewritten for superseding schemas); messages for the others."""
        valid = (validate_entity(self.resolver, entity, checked, self.unavailable_as_failure) for entity in entities)
        return [entity for entity in valid if entity is not None]

    def _bad(self, build: Any, messages: list[dict[str, Any]], event: EnrichedEvent, raw: RawEvent) -> dict[str, Any]:
        return build(self.processor, messages, badrows.partially_enriched_event(event), raw.to_json())  # type: ignore[no-any-return]


class _DefaultEventIds:
    """The default event_ids of one record's events, made only for events that need one."""

    __slots__ = ("_digest", "_record")

    def __init__(self, record: bytes) -> None:
        self._record = record
        self._digest: bytes | None = None

    def get(self, index: int) -> str:
        if self._digest is None:
            self._digest = hashlib.blake2b(self._record, digest_size=16).digest()
        return _default_event_id(self._digest, index)


def _default_event_id(record_digest: bytes, index: int) -> str:
    """A UUID v4 derived from the raw record and the event's place in it, for events without `eid`.

    Snowplow draws a random one; deriving it instead means a redelivered or replayed record gives
    the same event_id, so loaders' (event_id, event_fingerprint) dedupe makes storage exactly once.
    """
    seed = bytearray(hashlib.blake2b(record_digest + index.to_bytes(4, "big"), digest_size=16).digest())
    seed[6] = (seed[6] & 0x0F) | 0x40  # version 4
    seed[8] = (seed[8] & 0x3F) | 0x80  # RFC 4122 variant
    return str(uuid.UUID(bytes=bytes(seed)))


def _clean_useragent(useragent: str | None) -> str | None:
    if not useragent:
        return None
    return useragent.replace("\n", "").replace("\r", "").replace("\t", "    ") or None


def _atomic_error(reports: list[dict[str, Any]]) -> dict[str, Any]:
    return {"schemaKey": ATOMIC_SCHEMA, "error": {"error": "ValidationError", "dataReports": reports}}


def _atomic_messages(errors: list[AtomicParseError], keyword: str) -> list[dict[str, Any]]:
    if not errors:
        return []
    return [
        _atomic_error(
            [{"message": error.message, "path": error.parameter, "keyword": keyword, "targets": []} for error in errors]
        )
    ]
