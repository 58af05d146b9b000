"""LogStats: record totals and each group's backlog of a real file log, across segments and partitions,
as a group consumes and commits; the backlog comes from an index, not from re-reading what waits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from plowline.streams.file_log import FileLogSink, open_file_sink, open_file_source
from plowline.streams.file_log import stats as stats_module
from plowline.streams.file_log.stats import LogStats


async def _write(sink: FileLogSink, records: Sequence[bytes], per_write: int = 7) -> None:
    for start in range(0, len(records), per_write):
        await sink.write(records[start : start + per_write])


async def _consume_and_commit(url: str, group: str, count: int) -> None:
    """Read and ack exactly `count` records as `group`, in batches of at most 13 (a source per batch, so the
    last one can be smaller)."""
    done = 0
    while done < count:
        source = open_file_source(url, group)
        try:
            async for batch in source.batches(max_records=min(13, count - done), max_wait_s=0.2):
                await source.ack(batch)
                done += len(batch.records)
                break
        finally:
            await source.close()
    assert done == count


@pytest.mark.parametrize("mark_every", [1024, 4])  # 4: the index's marks fall inside segments, often
async def test_totals_and_backlogs_follow_writes_and_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mark_every: int
) -> None:
    monkeypatch.setattr(stats_module, "_MARK_EVERY", mark_every)
    url = f"file://{tmp_path}?segment_bytes=2000"
    records = [f"record-{n:05d}-".encode() * (1 + n % 5) for n in range(300)]
    sink = open_file_sink(url)
    await _write(sink, records[:200])
    stats = LogStats(tmp_path)
    assert len(list((tmp_path / "p-00000").glob("*.seg"))) >= 5
    assert stats.refresh() == 200
    assert stats.backlog("enrich") == 200  # nothing committed yet

    await _consume_and_commit(url, "enrich", 83)
    assert stats.backlog("enrich") == 117
    assert stats.backlog("load") == 200  # another group is where it was

    await _write(sink, records[200:])
    await sink.close()
    assert stats.backlog("enrich") == 217  # backlog refreshes the counts itself
    assert stats.total == 300 and stats.refresh() == 300  # each record is counted once

    await _consume_and_commit(url, "enrich", 217)
    assert stats.backlog("enrich") == 0
    assert LogStats(tmp_path).backlog("enrich") == 0  # a fresh count agrees


async def test_counting_starts_where_the_consumers_are_not_at_the_first_record(tmp_path: Path) -> None:
    """A long-lived log is not counted from its first record: only from the oldest segment a group has not
    finished. A group that never committed (a new loader on an old log) gets the older segments counted."""
    url = f"file://{tmp_path}?segment_bytes=500"
    records = [f"event-{n:04d}".encode() for n in range(200)]  # 18-byte frames: 27 to a segment
    sink = open_file_sink(url)
    await _write(sink, records)
    await _consume_and_commit(url, "enrich", 150)
    await _consume_and_commit(url, "load", 120)

    stats = LogStats(tmp_path)
    assert 80 <= stats.refresh() < 200  # from the segment holding "load"'s position onward
    assert (stats.backlog("enrich"), stats.backlog("load")) == (50, 80)
    assert stats.backlog("archive") == 200  # never committed: everything waits for it
    assert stats.backlog("load") == 80 and stats.new == 0

    await _write(sink, records[:10])
    await sink.close()
    assert stats.backlog("archive") == 210 and stats.new == 10


async def test_a_second_partition_and_a_torn_tail(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    first, second = open_file_sink(url), open_file_sink(url)  # two writers: partitions p-00000 and p-00001
    await first.write([b"a"] * 10)
    await second.write([b"b"] * 5)
    stats = LogStats(tmp_path)
    assert stats.refresh() == 15
    # A frame being written (its header says more bytes than are there yet) is not counted until whole.
    segment = sorted((tmp_path / "p-00001").glob("*.seg"))[-1]
    with segment.open("ab") as torn:
        torn.write((100).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"partial")
    assert stats.refresh() == 15 and stats.backlog("load") == 15
    await first.close()
    await second.close()


def test_a_log_that_does_not_exist_yet_counts_nothing(tmp_path: Path) -> None:
    stats = LogStats(tmp_path / "streams" / "raw")
    assert (stats.refresh(), stats.backlog("enrich")) == (0, 0)
