"""The file:// log beyond the contract: group commit, partitions, segments, torn tails, crashes."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

import plowline
from plowline.errors import ConfigError, TransportError
from plowline.streams import Batch, open_sink, open_source
from plowline.streams.file_log import (
    FileLogSink,
    FileLogSource,
    iter_records,
    open_file_sink,
    open_file_source,
)

from .conftest import Collect

HEADER = 8


def _records(batches: list[Batch]) -> list[bytes]:
    return [bytes(record) for batch in batches for record in batch.records]


def _frame(record: bytes) -> bytes:
    return len(record).to_bytes(4, "big") + zlib.crc32(record).to_bytes(4, "big") + record


def _segments(log: Path, partition: int = 0) -> list[Path]:
    return sorted((log / f"p-{partition:05d}").glob("*.seg"))


async def _write_and_close(sink: FileLogSink, records: list[bytes]) -> None:
    await sink.write(records)
    await sink.close()


# --- URLs --------------------------------------------------------------------------------------------


async def test_url_parameters_reach_the_sink(tmp_path: Path) -> None:
    sink = open_file_sink(f"file://{tmp_path}?segment_bytes=4096&linger_ms=2&max_record_bytes=77")
    assert (sink.segment_bytes, sink.linger_s, sink.max_record_bytes) == (4096, 0.002, 77)
    assert sink.root == tmp_path
    await sink.close()


async def test_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    sink = open_sink("file://data/raw")
    await sink.write([b"r"])
    await sink.close()
    assert list(iter_records(tmp_path / "data" / "raw")) == [b"r"]


@pytest.mark.parametrize(
    "url",
    ["file://", "file:///x?segment_bytes=0", "file:///x?linger_ms=soon", "file:///x?colour=blue"],
    ids=["no-path", "zero-segment", "not-a-number", "unknown-parameter"],
)
def test_bad_urls_fail_with_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        open_file_sink(url)


def test_bad_group_names_fail_with_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="group"):
        open_file_source(f"file://{tmp_path}", "../escape")


# --- group commit ------------------------------------------------------------------------------------


async def test_group_commit_covers_many_writes_with_one_fsync(tmp_path: Path) -> None:
    sink = open_file_sink(f"file://{tmp_path}")
    records = [f"event-{i:03d}".encode() for i in range(200)]

    await asyncio.gather(*(sink.write([record]) for record in records))

    assert sink.records_written == 200
    assert sink.bytes_written == sum(HEADER + len(r) for r in records)
    assert 1 <= sink.fsyncs <= 200 / 20
    assert sink.last_flush_seconds >= 0.0
    await sink.close()
    assert Counter(iter_records(tmp_path)) == Counter(records)


async def test_writes_arriving_during_an_fsync_share_the_next_one(tmp_path: Path) -> None:
    sink = open_file_sink(f"file://{tmp_path}")
    first = asyncio.create_task(sink.write([b"first"]))
    await asyncio.sleep(0)  # the flusher takes "first" alone; the rest pile up behind its fsync
    rest = [asyncio.create_task(sink.write([f"r{i}".encode()])) for i in range(50)]
    await asyncio.gather(first, *rest)
    assert sink.fsyncs <= 3
    await sink.close()
    assert len(list(iter_records(tmp_path))) == 51


# --- segments and partitions -------------------------------------------------------------------------


async def test_segments_rotate_at_segment_bytes_and_read_back_in_order(tmp_path: Path, collect: Collect) -> None:
    sink = open_file_sink(f"file://{tmp_path}?segment_bytes=100")
    records = [f"record-number-{i:04d}".encode() for i in range(20)]  # 31-byte frames: 3 per segment
    for record in records:
        await sink.write([record])
    await sink.write(records[:5])  # one flush spanning segments still rotates between frames
    await sink.close()

    segments = _segments(tmp_path)
    assert len(segments) >= 8
    assert all(segment.stat().st_size <= 100 for segment in segments)
    assert list(iter_records(tmp_path)) == records + records[:5]
    source = open_file_source(f"file://{tmp_path}", "enrich")
    assert _records(await collect(source, 25, max_records=4)) == records + records[:5]
    await source.close()


async def test_every_open_starts_a_new_segment(tmp_path: Path) -> None:
    for round_ in range(3):
        await _write_and_close(open_file_sink(f"file://{tmp_path}"), [f"round-{round_}".encode()])
    assert [p.name for p in _segments(tmp_path)] == [f"{seq:020d}.seg" for seq in range(3)]
    assert list(iter_records(tmp_path)) == [b"round-0", b"round-1", b"round-2"]


async def test_concurrent_sinks_take_different_partitions_and_close_releases_them(tmp_path: Path) -> None:
    first = open_file_sink(f"file://{tmp_path}")
    second = open_file_sink(f"file://{tmp_path}")
    assert (first.partition, second.partition) == (0, 1)
    await first.write([b"from-first"])
    await second.write([b"from-second"])
    await first.close()

    third = open_file_sink(f"file://{tmp_path}")
    assert third.partition == 0
    await third.close()
    await second.close()
    assert list(iter_records(tmp_path)) == [b"from-first", b"from-second"]


def _open_sink_in_child(url: str, conn: Connection) -> None:
    async def run() -> None:
        sink = open_file_sink(url)
        await sink.write([b"from-child"])
        conn.send(sink.partition)
        conn.recv()  # hold the partition until the parent has looked
        await sink.close()

    asyncio.run(run())


async def test_a_sink_in_another_process_gets_its_own_partition(tmp_path: Path) -> None:
    url = f"file://{tmp_path}"
    mine = open_file_sink(url)
    parent_conn, child_conn = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(target=_open_sink_in_child, args=(url, child_conn))
    child.start()
    try:
        assert await asyncio.to_thread(parent_conn.poll, 30), "child never reported its partition"
        child_partition = parent_conn.recv()
        also_mine = open_file_sink(url)
        assert {mine.partition, child_partition, also_mine.partition} == {0, 1, 2}
        assert child_partition != mine.partition
        await also_mine.close()
        parent_conn.send("close")
    finally:
        await asyncio.to_thread(child.join, 30)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    await mine.close()
    assert list(iter_records(tmp_path)) == [b"from-child"]


async def test_source_finds_partitions_and_segments_created_after_it_started(tmp_path: Path, collect: Collect) -> None:
    url = f"file://{tmp_path}?segment_bytes=64"
    source = open_source(url, "enrich")
    reading = asyncio.create_task(collect(source, 6, max_records=100))
    await asyncio.sleep(0.03)  # let the reader see an empty log first; no assertion depends on it
    first, second = open_sink(url), open_sink(url)
    for i in range(3):
        await first.write([f"first-{i}-padding-to-rotate-segments".encode()])
        await second.write([f"second-{i}".encode()])
    await first.close()
    await second.close()

    got = _records(await reading)
    assert len(_segments(tmp_path, 0)) == 3
    assert [r for r in got if r.startswith(b"first")] == [
        f"first-{i}-padding-to-rotate-segments".encode() for i in range(3)
    ]
    assert [r for r in got if r.startswith(b"second")] == [f"second-{i}".encode() for i in range(3)]
    await source.close()


# --- torn and corrupt records ------------------------------------------------------------------------

RECORDS = [f"old-{i}".encode() for i in range(5)]  # 5-byte payloads, 13-byte frames


def _truncate_mid_record(segment: Path) -> None:
    os.truncate(segment, segment.stat().st_size - 3)


def _append_garbage(segment: Path) -> None:
    with segment.open("ab") as f:
        f.write(b"\x00\x00\x00\x05\xde\xad\xbe\xefnot-a-record")


def _append_zeros(segment: Path) -> None:
    with segment.open("ab") as f:
        f.write(bytes(64))


def _corrupt_middle_record(segment: Path) -> None:
    data = bytearray(segment.read_bytes())
    data[2 * 13 + HEADER] ^= 0xFF  # first payload byte of the third record
    segment.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "survivors"),
    [
        (_truncate_mid_record, RECORDS[:4]),
        (_append_garbage, RECORDS),
        (_append_zeros, RECORDS),
        (_corrupt_middle_record, RECORDS[:2]),
    ],
    ids=["truncated", "garbage", "zeros", "crc-mismatch-mid-segment"],
)
async def test_a_torn_segment_tail_is_skipped_and_everything_else_read(
    tmp_path: Path, collect: Collect, damage: Callable[[Path], None], survivors: list[bytes]
) -> None:
    url = f"file://{tmp_path}"
    crashed, other = open_file_sink(url), open_file_sink(url)
    await _write_and_close(crashed, RECORDS)
    await _write_and_close(other, [b"other-0", b"other-1"])
    damage(_segments(tmp_path, 0)[0])
    await _write_and_close(open_file_sink(url), [b"new-0", b"new-1"])  # takes partition 0 again

    assert list(iter_records(tmp_path)) == [*survivors, b"new-0", b"new-1", b"other-0", b"other-1"]
    source = open_file_source(url, "enrich")
    got = _records(await collect(source, len(survivors) + 4))
    assert [r for r in got if not r.startswith(b"other")] == [*survivors, b"new-0", b"new-1"]
    assert [r for r in got if r.startswith(b"other")] == [b"other-0", b"other-1"]
    assert source.torn_records_skipped == 1
    await source.close()


async def test_a_partial_record_in_the_newest_segment_is_waited_for(tmp_path: Path, collect: Collect) -> None:
    url = f"file://{tmp_path}"
    await _write_and_close(open_file_sink(url), [b"r0", b"r1"])
    segment = _segments(tmp_path)[0]
    frame = _frame(b"r2-in-flight")
    with segment.open("ab") as f:
        f.write(frame[:5])

    source = open_file_source(url, "enrich")
    assert _records(await collect(source, 2)) == [b"r0", b"r1"]
    reading = asyncio.create_task(collect(source, 1))
    with segment.open("ab") as f:
        f.write(frame[5:])
    assert _records(await reading) == [b"r2-in-flight"]
    assert source.torn_records_skipped == 0

    # The same kind of tail, once a newer segment exists, is a crashed writer's torn record.
    with segment.open("ab") as f:
        f.write(frame[:5])
    await _write_and_close(open_file_sink(url), [b"r3"])
    assert _records(await collect(source, 1)) == [b"r3"]
    assert source.torn_records_skipped == 1
    await source.close()


# --- crashes and failures ----------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from plowline.streams.file_log import open_file_sink

    async def main() -> None:
        sink = open_file_sink(sys.argv[1])

        async def one(i: int) -> None:
            await sink.write([b"rec-%08d" % i])
            print(i, flush=True)

        i = 0
        while True:
            await asyncio.gather(*(one(i + k) for k in range(25)))
            i += 25

    asyncio.run(main())
    """
)


def test_every_acknowledged_write_survives_sigkill(tmp_path: Path) -> None:
    repo = Path(plowline.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, f"file://{tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    acknowledged: set[bytes] = set()
    try:
        assert child.stdout is not None
        while len(acknowledged) < 500:
            line = child.stdout.readline()
            assert line.endswith(b"\n"), child.stderr.read() if child.stderr else b""
            acknowledged.add(b"rec-%08d" % int(line))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        # Acknowledgements printed before the kill are still in the pipe.
        for line in child.stdout.read().splitlines(keepends=True):
            if line.endswith(b"\n"):
                acknowledged.add(b"rec-%08d" % int(line))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    assert child.returncode == -signal.SIGKILL

    async def restart() -> list[bytes]:
        url = f"file://{tmp_path}"
        sink = open_file_sink(url)
        assert sink.partition == 0  # the dead writer's lock died with it
        await _write_and_close(sink, [b"after-restart"])
        source = open_file_source(url, "enrich")
        batches: list[Batch] = []
        async with asyncio.timeout(10):
            async for batch in source.batches(max_records=100_000, max_wait_s=0.05):
                batches.append(batch)
                if b"after-restart" in batch.records:
                    break
        await source.close()
        return _records(batches)

    read_by_source = asyncio.run(restart())
    read = list(iter_records(tmp_path))
    assert acknowledged <= set(read)
    assert len(read) == len(set(read))
    assert read[-1] == b"after-restart"
    assert read_by_source == read


async def test_an_oversize_or_empty_record_is_the_callers_bug(tmp_path: Path) -> None:
    sink = open_file_sink(f"file://{tmp_path}?max_record_bytes=10")
    with pytest.raises(ValueError, match="max_record_bytes"):
        await sink.write([b"x" * 11])
    with pytest.raises(ValueError, match="empty"):
        await sink.write([b""])
    await sink.write([b"x" * 10])
    assert sink.records_written == 1
    assert sink.healthy()
    await sink.close()
    assert list(iter_records(tmp_path)) == [b"x" * 10]


async def test_a_failed_fsync_makes_the_sink_unhealthy_until_a_write_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = open_file_sink(f"file://{tmp_path}")
    await sink.write([b"before"])

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", broken_fsync)
        with pytest.raises(TransportError):
            await asyncio.gather(sink.write([b"lost-1"]), sink.write([b"lost-2"]))
        assert not sink.healthy()
        with pytest.raises(TransportError):
            await sink.write([b"lost-3"])
        assert not sink.healthy()

    await sink.write([b"after"])
    assert sink.healthy()
    await sink.close()
    # After a failure the writer moved to a fresh segment, so a half-written tail cannot hide "after".
    segments = _segments(tmp_path)
    assert b"lost-1" in segments[0].read_bytes()
    assert b"after" not in segments[0].read_bytes()
    assert segments[-1].read_bytes() == _frame(b"after")
    read = list(iter_records(tmp_path))
    assert read[0] == b"before"
    assert read[-1] == b"after"


async def test_acks_are_committed_atomically_to_per_partition_offset_files(tmp_path: Path, collect: Collect) -> None:
    url = f"file://{tmp_path}"
    await _write_and_close(open_file_sink(url), [b"a", b"b", b"c"])
    source = open_source(url, "enrich")
    assert isinstance(source, FileLogSource)
    batches = await collect(source, 3)
    await source.ack(batches[-1])
    await source.close()

    offsets = tmp_path / "_offsets"
    assert [p.name for p in offsets.iterdir()] == ["enrich"]
    # Only the committed file: no temporary file is left behind.
    assert [p.name for p in (offsets / "enrich").iterdir()] == ["p-00000.json"]
    assert json.loads((offsets / "enrich" / "p-00000.json").read_text()) == {"segment": 0, "offset": 3 * (HEADER + 1)}


async def test_ack_rewrites_only_the_partitions_that_moved(
    tmp_path: Path, collect: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path}"
    first, second = open_file_sink(url), open_file_sink(url)
    await first.write([b"first-0"])
    await second.write([b"second-0"])
    source = open_file_source(url, "enrich")
    await source.ack((await collect(source, 2))[-1])

    replaced: list[str] = []
    real_replace = os.replace

    def spy(src: str | Path, dst: str | Path) -> None:
        replaced.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    await first.write([b"first-1"])
    batches = await collect(source, 1)
    await source.ack(batches[-1])
    assert replaced == ["p-00000.json"]
    await source.ack(batches[-1])  # nothing moved: nothing written
    assert replaced == ["p-00000.json"]
    await source.close()
    await first.close()
    await second.close()


async def _three_partitions(url: str) -> None:
    sinks = [open_file_sink(url) for _ in range(3)]
    assert [sink.partition for sink in sinks] == [0, 1, 2]
    for sink in sinks:
        await sink.write([f"p{sink.partition}-{i}".encode() for i in range(2)])
    for sink in sinks:
        await sink.close()


async def test_a_member_reads_only_partitions_whose_index_modulo_members_is_its_number(
    tmp_path: Path, collect: Collect
) -> None:
    url = f"file://{tmp_path}"
    await _three_partitions(url)

    member_0 = open_source(f"{url}?member=0&members=2", "enrich")
    member_1 = open_source(f"{url}?members=2&member=1", "enrich")
    assert isinstance(member_0, FileLogSource)
    assert (member_0.membership.member, member_0.membership.members) == (0, 2)
    got_0 = await collect(member_0, 4)
    got_1 = await collect(member_1, 2)
    assert sorted(_records(got_0)) == [b"p0-0", b"p0-1", b"p2-0", b"p2-1"]
    assert _records(got_1) == [b"p1-0", b"p1-1"]
    position = got_1[-1].position
    assert isinstance(position, Mapping)
    assert set(position) == {"p-00001"}

    await member_0.ack(got_0[-1])
    await member_1.ack(got_1[-1])
    assert sorted(p.name for p in (tmp_path / "_offsets" / "enrich").iterdir()) == [
        "p-00000.json",
        "p-00001.json",
        "p-00002.json",
    ]
    # A batch of one member is not another member's to commit.
    with pytest.raises(ValueError, match="member"):
        await member_1.ack(got_0[-1])
    await member_0.close()
    await member_1.close()


async def test_a_single_member_url_reads_everything(tmp_path: Path, collect: Collect) -> None:
    url = f"file://{tmp_path}"
    await _three_partitions(url)
    source = open_source(f"{url}?member=0&members=1", "enrich")
    assert sorted(_records(await collect(source, 6))) == sorted(
        f"p{p}-{i}".encode() for p in range(3) for i in range(2)
    )
    await source.close()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("member=2&members=2", "member="),
        ("member=5", "member="),
        ("member=-1&members=2", "member="),
        ("member=one&members=2", "member="),
        ("members=0", "members="),
        ("member=0&members=", "members="),
    ],
    ids=["member-equals-members", "member-without-members", "negative", "not-a-number", "zero-members", "blank"],
)
def test_bad_membership_fails_with_a_config_error_naming_the_parameter(
    tmp_path: Path, query: str, parameter: str
) -> None:
    with pytest.raises(ConfigError, match=rf"\b{parameter}") as raised:
        open_file_source(f"file://{tmp_path}?{query}", "enrich")
    assert raised.value.key == "stream url"


def test_membership_parameters_are_validated_by_the_constructor_too(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="member"):
        FileLogSource(tmp_path, "enrich", member=3, members=3)


async def test_offsets_of_the_former_single_file_layout_are_kept(tmp_path: Path, collect: Collect) -> None:
    url = f"file://{tmp_path}"
    await _write_and_close(open_file_sink(url), [b"a", b"b", b"c"])
    (tmp_path / "_offsets").mkdir()
    legacy = {"partitions": {"p-00000": [0, 2 * (HEADER + 1)]}}
    (tmp_path / "_offsets" / "enrich.json").write_text(json.dumps(legacy))

    source = open_file_source(url, "enrich")
    batches = await collect(source, 1)
    assert _records(batches) == [b"c"]
    await source.ack(batches[-1])
    await source.close()
    # The new per-partition file wins from now on; the old file is only ever read.
    assert json.loads((tmp_path / "_offsets" / "enrich" / "p-00000.json").read_text()) == {
        "segment": 0,
        "offset": 3 * (HEADER + 1),
    }
    assert json.loads((tmp_path / "_offsets" / "enrich.json").read_text()) == legacy


@pytest.mark.parametrize("content", ["{not json", '{"segment": 0}', '{"segment": -1, "offset": 0}', "[0, 3]"])
async def test_an_unreadable_offset_file_fails_with_a_transport_error(tmp_path: Path, content: str) -> None:
    url = f"file://{tmp_path}"
    await _write_and_close(open_file_sink(url), [b"a"])
    (tmp_path / "_offsets" / "enrich").mkdir(parents=True)
    (tmp_path / "_offsets" / "enrich" / "p-00000.json").write_text(content)
    with pytest.raises(TransportError, match=r"p-00000\.json"):
        open_file_source(url, "enrich")


def test_iter_records_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert list(iter_records(tmp_path / "nothing-here")) == []


async def test_a_failed_offset_commit_is_a_transport_error_and_keeps_the_last_commit(
    tmp_path: Path, collect: Collect, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path}"
    await _write_and_close(open_file_sink(url), [b"a", b"b"])
    source = open_file_source(url, "enrich")
    batches = await collect(source, 2, max_records=1)
    await source.ack(batches[0])
    offset_file = tmp_path / "_offsets" / "enrich" / "p-00000.json"
    committed = offset_file.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", broken_fsync)
        with pytest.raises(TransportError, match="commit"):
            await source.ack(batches[1])
    assert offset_file.read_bytes() == committed
    assert [p.name for p in offset_file.parent.iterdir()] == ["p-00000.json"]

    await source.ack(batches[1])  # the retry writes it
    assert json.loads(offset_file.read_text()) == {"segment": 0, "offset": 2 * (HEADER + 1)}
    await source.close()
