"""Replay and recovery: re-enrich raw records from the immutable raw archive, or the inputs kept in bad rows.

Both write into the configured enriched and bad streams, so the running loaders store the results
and dedupe what they already hold: events keep their event_id on re-enrichment (the tracker's
`eid`, or one derived from the raw record), and their fingerprint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from plowline.config import Settings
from plowline.errors import PayloadDecodeError
from plowline.payload import CollectorPayload
from plowline.streams.file_log import iter_records

TP2_PATH = "/com.snowplowanalytics.snowplow/tp2"


@dataclass(frozen=True, slots=True)
class Unrecoverable:
    """A bad row whose input cannot be rebuilt, and why."""

    schema: str
    reason: str


def raw_archive_records(raw_url: str, since: datetime | None, until: datetime | None) -> Iterator[bytes]:
    """Raw records of a file-log archive whose collector time is in [since, until).

    A record that does not decode has no time: it is replayed (into a bad row) only by a range with
    no `since`, so replaying adjacent ranges never produces its bad row twice.
    """
    parts = urlsplit(raw_url)
    if parts.scheme != "file":
        raise ValueError(f"replay reads the raw archive of a file:// stream, not {raw_url!r}")
    low = int(since.timestamp() * 1000) if since else None
    high = int(until.timestamp() * 1000) if until else None
    for record in iter_records(Path(parts.netloc + parts.path)):
        if low is None and high is None:
            yield record
            continue
        try:
            stamp = CollectorPayload.from_thrift(record).timestamp
        except PayloadDecodeError:
            if low is None:
                yield record
            continue
        if (low is None or stamp >= low) and (high is None or stamp < high):
            yield record


def _millis(iso: str | None) -> int:
    if not iso:
        return 0
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)


def _from_collector_payload_json(payload: dict[str, Any]) -> bytes:
    query = payload.get("querystring") or []
    querystring = "&".join(
        urlencode({item["name"]: item["value"]}) if item.get("value") is not None else item["name"] for item in query
    )
    vendor, version = payload.get("vendor"), payload.get("version")
    path = "/i" if (vendor, version) == ("com.snowplowanalytics.snowplow", "tp1") else f"/{vendor}/{version}"
    return CollectorPayload(
        ip_address=payload.get("ipAddress") or "unknown",
        timestamp=_millis(payload.get("timestamp")),
        encoding=payload.get("encoding") or "UTF-8",
        collector=payload.get("collector") or "unknown",
        user_agent=payload.get("useragent"),
        referer_uri=payload.get("refererUri"),
        path=path,
        querystring=querystring,
        body=payload.get("body"),
        headers=list(payload.get("headers") or []),
        content_type=payload.get("contentType"),
        hostname=payload.get("hostname"),
        network_user_id=payload.get("networkUserId"),
    ).to_thrift()


def _from_raw_event_json(raw: dict[str, Any], collector: str | None) -> bytes:
    """A raw event's parameters as a tp2 GET: the tp2 adapter gives back the same parameters."""
    parameters = {item["name"]: item["value"] for item in raw.get("parameters") or [] if item.get("value") is not None}
    return CollectorPayload(
        ip_address=raw.get("ipAddress") or "unknown",
        timestamp=_millis(raw.get("timestamp")),
        encoding=raw.get("encoding") or "UTF-8",
        collector=collector or "recovered",
        user_agent=raw.get("useragent"),
        referer_uri=raw.get("refererUri"),
        # Whatever adapter made them, the parameters are tracker-protocol ones: tp2 gives them back as they are.
        path=TP2_PATH,
        querystring=urlencode(parameters),
        headers=list(raw.get("headers") or []),
        hostname=raw.get("hostname"),
        network_user_id=raw.get("userId"),
    ).to_thrift()


def recover_record(row: dict[str, Any]) -> bytes | Unrecoverable:
    """The raw record a bad row keeps, rebuilt so enrich can try it again."""
    schema = str(row.get("schema", ""))
    kind = schema.split("/")[1] if schema.count("/") >= 3 else schema
    payload = (row.get("data") or {}).get("payload")
    try:
        if kind in ("collector_payload_format_violation", "generic_error") and isinstance(payload, str):
            return base64.b64decode(payload, validate=True)
        if kind in ("adapter_failures", "tracker_protocol_violations") and isinstance(payload, dict):
            return _from_collector_payload_json(payload)
        if kind in ("schema_violations", "enrichment_failures") and isinstance(payload, dict):
            enriched = payload.get("enriched") or {}
            return _from_raw_event_json(payload.get("raw") or {}, enriched.get("v_collector"))
    except (binascii.Error, KeyError, TypeError, ValueError) as exc:
        return Unrecoverable(schema, f"its payload cannot be rebuilt: {exc}")
    if kind == "size_violation":
        return Unrecoverable(schema, "a size_violation keeps only the start of the payload")
    return Unrecoverable(schema, "this bad-row type keeps no recoverable payload")


def read_bad_rows(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Bad rows from JSON-lines files (plain or .gz) or directories of them.

    In a directory, names starting with `_` or `.` are skipped, as Hive-style readers do: the files
    loader keeps its dedupe index in `<partition>/_index/`."""
    import gzip

    def data_file(file: Path, root: Path) -> bool:
        return file.is_file() and not any(part.startswith(("_", ".")) for part in file.relative_to(root).parts)

    for path in paths:
        files = sorted(p for p in path.rglob("*") if data_file(p, path)) if path.is_dir() else [path]
        for file in files:
            opener = gzip.open if file.suffix == ".gz" else open
            with opener(file, "rb") as handle:
                for line in handle:
                    if line.strip():
                        yield orjson.loads(line)


async def enrich_into_streams(
    settings: Settings, records: Iterable[bytes], total: int | None, label: str
) -> tuple[int, int]:
    """Enrich records into the configured enriched and bad streams, with a progress bar; (good, bad)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from plowline.enrich.service import build_pipeline
    from plowline.enrich.worker import process_batch
    from plowline.streams import open_sink

    pipeline = build_pipeline(settings)
    good_sink, bad_sink = open_sink(settings.enriched_stream_url()), open_sink(settings.bad_stream_url())
    good = bad = 0
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    try:
        # On stderr, beside the summary line: stdout stays free for the caller.
        with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
            task = progress.add_task(label, total=total)
            batch: list[bytes] = []
            for record in chain(records, [None]):
                if record is not None:
                    batch.append(record)
                if batch and (record is None or len(batch) >= settings.enrich.batch_size):
                    serialized = process_batch(pipeline, batch, good_sink.max_record_bytes)
                    if serialized.good:
                        await good_sink.write(serialized.good)
                    if serialized.bad:
                        await bad_sink.write(serialized.bad)
                    good, bad = good + len(serialized.good), bad + len(serialized.bad)
                    progress.advance(task, len(batch))
                    batch = []
    finally:
        await good_sink.close()
        await bad_sink.close()
    return good, bad
