"""The enrich loop over real transports: ack only after good and bad output are durable; retry, never drop."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from plowline.enrich import worker
from plowline.enrich.metrics import enrich_metrics
from plowline.enrich.pipeline import Pipeline
from plowline.event import EnrichedEvent
from plowline.streams import open_sink, open_source
from plowline.streams.memory import RecordingSink
from tests.enrich.test_pipeline import CUSTOM, IGLU_CENTRAL, make_pipeline, payload


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return make_pipeline(tmp_path_factory.mktemp("assets"), IGLU_CENTRAL, CUSTOM)


RECORDS = [
    payload("e=pv&p=web&tv=t&aid=one"),
    payload("e=zz&p=web&tv=t"),  # a bad row
    payload("e=se&p=web&tv=t&se_ca=c&se_ac=a"),
    b"garbage",  # a bad row
]


async def consume(url: str, group: str, good: RecordingSink, bad: RecordingSink, pipeline: Pipeline, total: int) -> None:
    source = open_source(url, group)
    try:
        await asyncio.wait_for(worker.run_worker(
            source, good, bad, pipeline, enrich_metrics(), max_records=2, max_wait_s=0.05,
            should_stop=lambda: len(good.records) + len(bad.records) >= total), timeout=30)
    finally:
        await source.close()


async def test_every_record_ends_good_or_bad_and_is_acked(tmp_path: Path, pipeline: Pipeline) -> None:
    url = f"file://{tmp_path / 'raw'}"
    sink = open_sink(url)
    await sink.write(RECORDS)
    await sink.close()
    good, bad = RecordingSink(), RecordingSink()
    await consume(url, "enrich", good, bad, pipeline, total=4)
    assert [EnrichedEvent.from_tsv(line.decode()).app_id for line in good.records] == ["one", None]
    assert len(bad.records) == 2
    assert {orjson.loads(row)["schema"].split("/")[1] for row in bad.records} == {
        "schema_violations", "collector_payload_format_violation"}
    # Everything was acked: a restarted worker finds nothing left to do.
    again = open_source(url, "enrich")
    batches = again.batches(10, 0.2)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(batches), timeout=0.5)
    await again.close()


async def test_a_failing_sink_is_retried_and_nothing_is_acked_before(tmp_path: Path, pipeline: Pipeline,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker, "RETRY_BACKOFF_S", (0.01,))
    url = f"file://{tmp_path / 'raw'}"
    sink = open_sink(url)
    await sink.write(RECORDS[:1])
    await sink.close()
    good, bad = RecordingSink(), RecordingSink()
    good.fail_next(2)
    await consume(url, "enrich", good, bad, pipeline, total=1)
    assert len(good.calls) == 3  # two failures, then success
    assert len(good.records) == 1


async def test_a_crash_before_ack_redelivers(tmp_path: Path, pipeline: Pipeline) -> None:
    url = f"file://{tmp_path / 'raw'}"
    sink = open_sink(url)
    await sink.write(RECORDS[:1])
    await sink.close()
    source = open_source(url, "enrich")
    batch = await anext(source.batches(10, 0.1))
    serialized = worker.process_batch(pipeline, list(batch.records), 1_000_000)
    assert len(serialized.good) == 1
    await source.close()  # crashed before writing and acking
    good, bad = RecordingSink(), RecordingSink()
    await consume(url, "enrich", good, bad, pipeline, total=1)
    assert len(good.records) == 1


def test_an_unexpected_error_keeps_the_record_in_a_generic_error(pipeline: Pipeline,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(record: bytes, etl: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "process", explode)
    serialized = worker.process_batch(pipeline, [b"abc"], 1_000_000)
    [row] = [orjson.loads(line) for line in serialized.bad]
    assert row["schema"].endswith("/generic_error/jsonschema/1-0-0")
    assert row["data"]["payload"] == "YWJj"


def test_an_enriched_event_too_big_for_its_sink_becomes_a_size_violation(pipeline: Pipeline) -> None:
    serialized = worker.process_batch(pipeline, [payload("e=pv&p=web&tv=t&page=" + "x" * 1500)], 1000)
    assert serialized.good == []
    [row] = [orjson.loads(line) for line in serialized.bad]
    assert row["schema"].endswith("/size_violation/jsonschema/1-0-0")
    assert row["data"]["failure"]["maximumAllowedSizeBytes"] == 1000


async def test_an_iglu_outage_retries_then_degrades_to_recoverable_bad_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema on an unreachable repository: the batch is retried, then its event becomes a schema violation."""
    import socket

    from plowline import badrows
    from plowline.enrich.assets import LocalAssetStore
    from plowline.enrich.enrichment_config import load_enrichments
    from plowline.iglu.repositories import EmbeddedRepository, StaticHttpRepository
    from plowline.iglu.resolver import Resolver

    with socket.socket() as probe:  # a port nobody listens on: connections are refused at once
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    resolver = Resolver([StaticHttpRepository(f"http://127.0.0.1:{dead_port}")], preferred=[EmbeddedRepository()],
                        retry_backoff=0.001)
    pipeline = Pipeline(resolver, load_enrichments(None, resolver, LocalAssetStore(tmp_path, tmp_path / "a")),
                        badrows.Processor("plowline-enrich", "test"))
    monkeypatch.setattr(worker, "RETRY_BACKOFF_S", (0.01,))
    url = f"file://{tmp_path / 'raw'}"
    sink = open_sink(url)
    context = '{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"iglu:com.acme/thing/jsonschema/1-0-0","data":{}}]}'
    from urllib.parse import quote

    await sink.write([payload("e=pv&p=web&tv=t&co=" + quote(context))])
    await sink.close()
    good, bad = RecordingSink(), RecordingSink()
    await consume(url, "enrich", good, bad, pipeline, total=1)
    [row] = [orjson.loads(line) for line in bad.records]
    assert row["schema"].endswith("/schema_violations/jsonschema/2-0-0")
    assert row["data"]["failure"]["messages"][0]["error"]["error"] == "ResolutionError"
    assert enrich_metrics().retries._value.get() >= worker.IGLU_RETRIES
    assert pipeline.degraded_until > 0
