"""The memory:// transport beyond the contract: URL parsing, closing while waiting, and RecordingSink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import cast

import pytest

from plowline.errors import ConfigError, TransportError
from plowline.streams import Batch, Sink, Source, open_sink, open_source
from plowline.streams.memory import (
    DEFAULT_MAX_RECORD_BYTES,
    MemorySink,
    MemorySource,
    RecordingSink,
    open_memory_sink,
    open_memory_source,
    reset_memory_streams,
)

from .conftest import Collect

# --- RecordingSink -----------------------------------------------------------------------------------


async def test_recording_sink_keeps_calls_writes_and_records_in_order() -> None:
    sink = RecordingSink()
    assert isinstance(sink, Sink)
    assert sink.max_record_bytes == DEFAULT_MAX_RECORD_BYTES
    await sink.write([b"a", bytearray(b"b")])
    await sink.write([])
    await sink.write([memoryview(b"c")])

    assert sink.calls == [(b"a", b"b"), (), (b"c",)]
    assert sink.writes == [(b"a", b"b"), (), (b"c",)]
    assert sink.records == [b"a", b"b", b"c"]
    assert all(type(record) is bytes for record in sink.records)


async def test_fail_next_fails_that_many_calls_with_a_transport_error_by_default() -> None:
    sink = RecordingSink()
    sink.fail_next(2)
    for attempt in (b"first", b"second"):
        with pytest.raises(TransportError, match="told to fail"):
            await sink.write([attempt])
    await sink.write([b"third"])

    # Failed calls are recorded, but only the successful one made records "durable".
    assert sink.calls == [(b"first",), (b"second",), (b"third",)]
    assert sink.writes == [(b"third",)]
    assert sink.records == [b"third"]


async def test_fail_next_raises_the_given_error_once_per_call_in_order() -> None:
    sink = RecordingSink()
    disk_full = OSError(28, "No space left on device")
    sink.fail_next(error=disk_full)
    sink.fail_next(error=TransportError("broker down"))
    with pytest.raises(OSError) as raised:
        await sink.write([b"a"])
    assert raised.value is disk_full
    with pytest.raises(TransportError, match="broker down"):
        await sink.write([b"a"])
    await sink.write([b"a"])
    assert sink.records == [b"a"]


async def test_recording_sink_refuses_what_every_sink_refuses() -> None:
    sink = RecordingSink(max_record_bytes=3)
    sink.fail_next()
    with pytest.raises(ValueError, match="max_record_bytes"):
        await sink.write([b"ok", b"long"])
    with pytest.raises(ValueError, match="empty"):
        await sink.write([b""])
    # A refused call is the caller's bug: it still counts as a call but uses up no planned failure.
    assert sink.calls == [(b"ok", b"long"), (b"",)]
    with pytest.raises(ValueError, match="bytes"):
        await sink.write(["text"])  # type: ignore[list-item]
    assert len(sink.calls) == 2  # not bytes: nothing to record
    with pytest.raises(TransportError):
        await sink.write([b"ok"])
    assert sink.writes == []


async def test_set_healthy_and_the_initial_health() -> None:
    sink = RecordingSink()
    assert sink.healthy()
    sink.set_healthy(False)
    assert not sink.healthy()
    await sink.write([b"still-written"])  # health is only reported; writes still succeed
    sink.set_healthy(True)
    assert sink.healthy()
    assert sink.records == [b"still-written"]
    assert not RecordingSink(healthy=False).healthy()


async def test_a_closed_recording_sink_refuses_writes_but_records_the_call() -> None:
    sink = RecordingSink()
    await sink.write([b"before"])
    await sink.close()
    assert sink.closed
    with pytest.raises(RuntimeError, match="closed"):
        await sink.write([b"after"])
    assert sink.calls == [(b"before",), (b"after",)]
    assert sink.records == [b"before"]


# --- URLs --------------------------------------------------------------------------------------------


def test_url_parameters_reach_the_sink_and_source() -> None:
    sink = open_memory_sink("memory://raw?max_record_bytes=77")
    assert (sink.name, sink.max_record_bytes) == ("raw", 77)
    assert open_memory_sink("memory://raw").max_record_bytes == DEFAULT_MAX_RECORD_BYTES
    assert open_memory_sink("memory://raw/sub").name == "raw/sub"
    source = open_memory_source("memory://raw?member=0&members=1", "enrich")
    assert (source.name, source.group) == ("raw", "enrich")
    assert isinstance(open_sink("memory://raw"), MemorySink)
    assert isinstance(open_source("memory://raw", "enrich"), MemorySource)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///tmp/x", "not a memory:// url"),
        ("memory://", "names no stream"),
        ("memory://raw?colour=blue", "unknown parameter"),
        ("memory://raw?max_record_bytes=0", "max_record_bytes="),
        ("memory://raw?max_record_bytes=big", "max_record_bytes="),
        ("memory://raw?member=1&members=1", "member=1"),
        ("memory://raw?members=0", "members=0"),
        ("memory://raw?member=x", "member='x'"),
    ],
    ids=[
        "other-scheme",
        "no-name",
        "unknown",
        "zero-size",
        "not-a-number",
        "member-too-big",
        "no-members",
        "bad-member",
    ],
)
def test_bad_urls_fail_with_a_config_error(url: str, problem: str) -> None:
    for opener in (open_memory_sink, lambda url: open_memory_source(url, "enrich")):
        with pytest.raises(ConfigError, match=problem) as raised:
            opener(url)
        assert raised.value.key == "stream url"


def test_several_members_of_a_group_are_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError, match="no partitions") as raised:
        open_memory_source("memory://raw?member=1&members=2", "enrich")
    assert "members=2" in raised.value.problem
    assert "file://" in raised.value.fix
    # A sink has no members: the same URL still opens for writing.
    assert open_memory_sink("memory://raw?member=1&members=2").name == "raw"


def test_an_empty_group_is_refused() -> None:
    with pytest.raises(ConfigError, match="group"):
        open_memory_source("memory://raw", "")


# --- sources -----------------------------------------------------------------------------------------


async def _until_waiting(source: MemorySource) -> None:
    """Let the reader run until it waits for records (white-box: no public signal for it)."""
    for _ in range(100):
        if source._waiter is not None:
            return
        await asyncio.sleep(0)
    pytest.fail("the source never started waiting")


async def _read_all(source: Source, max_records: int, max_wait_s: float) -> list[Batch]:
    stream = cast(AsyncGenerator[Batch, None], source.batches(max_records, max_wait_s))
    async with aclosing(stream):
        return [batch async for batch in stream]


async def test_closing_a_source_while_it_waits_on_an_empty_stream_ends_its_batches() -> None:
    source = open_memory_source("memory://quiet", "enrich")
    reading = asyncio.create_task(_read_all(source, 10, 60))
    await _until_waiting(source)
    await source.close()
    async with asyncio.timeout(10):
        assert await reading == []


async def test_closing_a_source_while_it_waits_to_fill_a_batch_redelivers_the_records(collect: Collect) -> None:
    sink = open_memory_sink("memory://slow")
    await sink.write([b"lonely"])
    source = open_memory_source("memory://slow", "enrich")
    # One record is there, but the batch waits (a minute at most) for up to ten.
    reading = asyncio.create_task(_read_all(source, 10, 60))
    await _until_waiting(source)
    await source.close()
    async with asyncio.timeout(10):
        assert await reading == []

    restarted = open_memory_source("memory://slow", "enrich")
    assert [bytes(r) for b in await collect(restarted, 1) for r in b.records] == [b"lonely"]
    await restarted.close()


async def test_a_source_closed_before_reading_yields_nothing() -> None:
    await open_memory_sink("memory://raw").write([b"r"])
    source = open_memory_source("memory://raw", "enrich")
    await source.close()
    assert await _read_all(source, 10, 0) == []


async def test_acking_a_foreign_batch_is_a_type_error() -> None:
    source = open_memory_source("memory://raw", "enrich")
    with pytest.raises(TypeError, match="memory"):
        await source.ack(Batch(records=[b"r"], position={"p-00000": (0, 9)}))


async def test_a_closed_memory_sink_is_unhealthy_and_refuses_writes() -> None:
    sink = open_memory_sink("memory://raw")
    assert sink.healthy()
    await sink.close()
    assert not sink.healthy()
    with pytest.raises(RuntimeError, match="closed"):
        await sink.write([b"r"])


async def test_reset_forgets_records_and_committed_offsets(collect: Collect) -> None:
    sink = open_memory_sink("memory://raw")
    await sink.write([b"old"])
    source = open_memory_source("memory://raw", "enrich")
    await source.ack((await collect(source, 1))[-1])
    await source.close()

    reset_memory_streams()
    await sink.write([b"new"])
    fresh = open_memory_source("memory://raw", "enrich")
    assert [bytes(r) for b in await collect(fresh, 1) for r in b.records] == [b"new"]
    await fresh.close()
