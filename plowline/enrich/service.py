"""Running enrich: build the pipeline from settings, then consume the raw stream until told to stop."""

from __future__ import annotations

import asyncio
import base64
import binascii
import signal
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import orjson

from plowline import __version__, badrows
from plowline.config import Settings
from plowline.enrich.assets import LocalAssetStore
from plowline.enrich.enrichment_config import load_enrichments
from plowline.enrich.metrics import enrich_metrics
from plowline.enrich.pipeline import Pipeline
from plowline.enrich.worker import process_batch, run_worker
from plowline.iglu.resolver import Resolver
from plowline.observability import get_logger
from plowline.streams import open_sink, open_source

log = get_logger("enrich")
PROCESSOR = badrows.Processor("plowline-enrich", __version__)
CONSUMER_GROUP = "enrich"


def build_pipeline(settings: Settings) -> Pipeline:
    """Resolver, enrichments (validated, every error reported at once), pipeline: fails fast on bad config."""
    resolver = Resolver.configured(settings.enrich.resolver, extra_local_dirs=list(settings.enrich.iglu))
    base_dir = settings.enrich.enrichments or Path.cwd()
    assets = LocalAssetStore(base_dir if base_dir.is_dir() else base_dir.parent, settings.data_dir / "assets")
    enrichments = load_enrichments(settings.enrich.enrichments, resolver, assets)
    log.info("enrichments configured", names=sorted(enrichments))
    return Pipeline(resolver, enrichments, PROCESSOR)


def member_url(url: str, member: int, members: int) -> str:
    """The raw stream URL for one of `members` consumers of the enrich group."""
    if members == 1:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}member={member}&members={members}"


async def serve_member(settings: Settings, member: int = 0, members: int = 1) -> None:
    """One enrich worker process: consume its share of the raw stream until SIGINT/SIGTERM."""
    pipeline = build_pipeline(settings)
    source = open_source(member_url(settings.raw_stream_url(), member, members), CONSUMER_GROUP)
    good_sink = open_sink(settings.enriched_stream_url())
    bad_sink = open_sink(settings.bad_stream_url())
    stopping = asyncio.Event()
    closing: list[asyncio.Task[None]] = []
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        if not stopping.is_set():
            log.info("enrich worker stopping", member=member)
            stopping.set()
            # Closing the source ends its batch iterator once the batch in hand is acked.
            closing.append(loop.create_task(source.close()))

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    log.info(
        "enrich worker started",
        member=member,
        members=members,
        raw=settings.raw_stream_url(),
        enriched=settings.enriched_stream_url(),
        bad=settings.bad_stream_url(),
    )
    try:
        await run_worker(
            source,
            good_sink,
            bad_sink,
            pipeline,
            enrich_metrics(),
            max_records=settings.enrich.batch_size,
            should_stop=stopping.is_set,
        )
    finally:
        await source.close()
        await good_sink.close()
        await bad_sink.close()
        log.info("enrich worker stopped", member=member)


def read_raw_lines(stream: IO[str]) -> Iterator[bytes]:
    """Raw records for one-shot mode: base64 Thrift, one per line (Snowplow's stdout sink format)."""
    for number, line in enumerate(stream, 1):
        text = line.strip()
        if not text:
            continue
        try:
            yield base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except binascii.Error:
            # Still enriched: the pipeline turns it into a collector_payload_format_violation.
            log.warning("line is not base64", line=number)
            yield text.encode("utf-8")


def run_once(
    settings: Settings, records: Iterable[bytes], output_format: str, out: IO[str], err: IO[str]
) -> tuple[int, int]:
    """Enrich records and print: good events to `out` (TSV or JSON lines), bad rows to `err`."""
    pipeline = build_pipeline(settings)
    good_count = bad_count = 0
    batch = list(records)
    serialized = process_batch(pipeline, batch, good_max_bytes=sys.maxsize)
    for line in serialized.good:
        if output_format == "json":
            from plowline.event import EnrichedEvent

            out.write(orjson.dumps(EnrichedEvent.from_tsv(line.decode("utf-8")).to_json()).decode() + "\n")
        else:
            out.write(line.decode("utf-8") + "\n")
        good_count += 1
    for row in serialized.bad:
        err.write(row.decode("utf-8") + "\n")
        bad_count += 1
    return good_count, bad_count
