"""Fitting records into the raw sink: write, split a POST batch, or make size_violation bad rows.

Follows Snowplow's collector (spec/protocol.md 3.11): a record that fits the sink is written
whole; a record over `max_payload_size` becomes one size_violation; in between, a POST whose body
is a self-describing JSON with a `data` array is split into records that each fit, and only
events too big on their own become bad rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import orjson

from plowline import badrows
from plowline.payload import CollectorPayload


@dataclass(slots=True)
class Fitted:
    """What to write for one request: raw records for the good sink, bad rows for the bad sink."""

    records: list[bytes] = field(default_factory=list)
    bad_rows: list[bytes] = field(default_factory=list)


def _violation(
    processor: badrows.Processor, maximum: int, actual: int, message: str, dump: bytes
) -> bytes:
    # Snowplow keeps the first tenth of the allowed size of the record, as text.
    payload = dump.decode("utf-8", errors="replace")[: maximum // 10]
    return badrows.size_violation(processor, maximum, actual, message, payload)


def fit_to_sink(
    payload: CollectorPayload,
    record: bytes,
    max_record_bytes: int,
    max_payload_size: int,
    processor: badrows.Processor,
) -> Fitted:
    size = len(record)
    if size <= max_record_bytes:
        return Fitted(records=[record])
    if size > max_payload_size:
        message = f"Payload exceeds max size of {max_payload_size}. Actual length: {size}"
        return Fitted(bad_rows=[_violation(processor, max_payload_size, size, message, record)])
    return _split_post(payload, record, max_record_bytes, processor)


def _split_post(
    payload: CollectorPayload, record: bytes, max_bytes: int, processor: badrows.Processor
) -> Fitted:
    size = len(record)

    def whole(message: str) -> Fitted:
        return Fitted(bad_rows=[_violation(processor, max_bytes, size, message, record)])

    if payload.body is None:
        return whole("GET requests cannot be split")
    try:
        envelope = orjson.loads(payload.body)
    except orjson.JSONDecodeError as exc:
        return whole(f"cannot split POST requests which are not json ({exc})")
    if not isinstance(envelope, dict) or not isinstance(envelope.get("schema"), str) or "data" not in envelope:
        return whole("cannot split POST requests which are not self-describing")
    events = envelope["data"]
    if not isinstance(events, list):
        return whole("cannot split POST requests which do not contain a data array")

    schema = envelope["schema"]
    empty = dataclasses.replace(payload, body=orjson.dumps({"schema": schema, "data": []}).decode())
    budget = max_bytes - len(empty.to_thrift())
    if budget <= 0:
        return whole('cannot split this POST request because event without "data" field is still too big')

    fitted = Fitted()
    batch: list[bytes] = []
    used = 0

    def emit() -> None:
        body = b'{"schema":' + orjson.dumps(schema) + b',"data":[' + b",".join(batch) + b"]}"
        fitted.records.append(dataclasses.replace(payload, body=body.decode()).to_thrift())

    for event in events:
        encoded = orjson.dumps(event)
        cost = len(encoded) + 1  # the comma that joins it to the batch
        if cost > budget:
            message = "this POST request split is still too large"
            fitted.bad_rows.append(_violation(processor, max_bytes, cost, message, encoded))
            continue
        if used + cost > budget:
            emit()
            batch, used = [], 0
        batch.append(encoded)
        used += cost
    if batch:
        emit()
    return fitted
