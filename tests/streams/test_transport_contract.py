"""The delivery contract of `plowline.streams.base`, checked against every transport."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from plowline.streams import Batch, Sink, Source

from .conftest import Collect, Transport, collect_members


def _records(batches: list[Batch]) -> list[bytes]:
    return [bytes(record) for batch in batches for record in batch.records]


async def test_round_trip(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    source = transport.source("enrich")
    assert isinstance(sink, Sink)
    assert isinstance(source, Source)

    await sink.write([b"alpha", b"beta", b"\x00\xffbinary"])
    await sink.close()

    assert _records(await collect(source, 3)) == [b"alpha", b"beta", b"\x00\xffbinary"]
    await source.close()


async def test_order_is_preserved(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    expected = [f"record-{i:04d}".encode() for i in range(120)]
    for i in range(0, 60):
        await sink.write([expected[i]])
    await sink.write(expected[60:])
    await sink.close()

    source = transport.source("enrich")
    assert _records(await collect(source, 120, max_records=7)) == expected
    await source.close()


async def test_batches_are_never_empty_and_respect_max_records(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    expected = [f"r{i}".encode() for i in range(23)]
    await sink.write(expected)
    await sink.close()

    source = transport.source("enrich")
    batches = await collect(source, 23, max_records=5)
    assert all(1 <= len(batch.records) <= 5 for batch in batches)
    assert len(batches) >= 5
    assert _records(batches) == expected
    await source.close()


async def test_unacked_batches_are_redelivered_after_restart(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    expected = [f"r{i}".encode() for i in range(10)]
    await sink.write(expected)
    await sink.close()

    first = transport.source("enrich")
    batches = await collect(first, 10, max_records=4)
    assert _records(batches) == expected
    await first.ack(batches[0])
    await first.close()

    restarted = transport.source("enrich")
    assert _records(await collect(restarted, 10 - len(batches[0].records))) == expected[len(batches[0].records) :]
    await restarted.close()


async def test_acking_a_batch_commits_every_earlier_one(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    expected = [f"r{i}".encode() for i in range(9)]
    await sink.write(expected)

    first = transport.source("enrich")
    batches = await collect(first, 9, max_records=3)
    assert len(batches) == 3
    await first.ack(batches[1])
    await first.ack(batches[0])  # late ack of an older batch must not move the position back
    await first.close()

    await sink.write([b"after"])
    await sink.close()
    restarted = transport.source("enrich")
    assert _records(await collect(restarted, 4)) == [*expected[6:], b"after"]
    await restarted.close()


async def test_acked_position_survives_restart(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    await sink.write([f"r{i}".encode() for i in range(6)])

    first = transport.source("enrich")
    batches = await collect(first, 6, max_records=4)
    await first.ack(batches[-1])
    await first.close()

    await sink.write([b"sentinel"])
    await sink.close()
    restarted = transport.source("enrich")
    # Nothing acked comes back: the first record after a restart is the one written after the ack.
    assert _records(await collect(restarted, 1)) == [b"sentinel"]
    await restarted.close()


async def test_consumer_groups_are_independent(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    expected = [f"r{i}".encode() for i in range(5)]
    await sink.write(expected)

    enrich = transport.source("enrich")
    enrich_batches = await collect(enrich, 5)
    await enrich.ack(enrich_batches[-1])
    await enrich.close()

    archive = transport.source("archive")
    assert _records(await collect(archive, 5)) == expected
    await archive.close()

    await sink.write([b"sentinel"])
    await sink.close()
    enrich_again = transport.source("enrich")
    archive_again = transport.source("archive")
    assert _records(await collect(enrich_again, 1)) == [b"sentinel"]
    assert _records(await collect(archive_again, 6)) == [*expected, b"sentinel"]
    await enrich_again.close()
    await archive_again.close()


async def test_records_written_after_the_source_started_are_read(transport: Transport, collect: Collect) -> None:
    source = transport.source("enrich")
    reading = asyncio.create_task(collect(source, 3))
    await asyncio.sleep(0.03)  # let the reader find an empty stream first; no assertion depends on it
    assert not reading.done()

    sink = transport.sink()
    await sink.write([b"one"])
    await sink.write([b"two", b"three"])
    await sink.close()

    assert _records(await reading) == [b"one", b"two", b"three"]
    await source.close()


async def test_oversize_records_are_refused(transport: Transport, collect: Collect) -> None:
    sink = transport.sink()
    with pytest.raises(ValueError, match="max_record_bytes"):
        await sink.write([b"ok", b"x" * (sink.max_record_bytes + 1)])
    await sink.write([b"x" * sink.max_record_bytes])
    await sink.close()

    source = transport.source("enrich")
    # The refused call wrote nothing, not even its valid first record.
    assert _records(await collect(source, 1)) == [b"x" * sink.max_record_bytes]
    await source.close()


async def test_sink_is_healthy_while_open(transport: Transport) -> None:
    sink = transport.sink()
    assert sink.healthy()
    await sink.write([b"r"])
    assert sink.healthy()
    await sink.close()


# --- several consumers in one group --------------------------------------------------------------------


async def _write_from_two_sinks_at_once(transport: Transport, count: int) -> tuple[list[bytes], list[bytes]]:
    """Write `count` records from each of two sinks open at the same time (on the file log: two partitions)."""
    first, second = transport.sink(), transport.sink()
    from_first = [f"first-{i:03d}".encode() for i in range(count)]
    from_second = [f"second-{i:03d}".encode() for i in range(count)]
    for i in range(0, count, 4):
        await first.write(from_first[i : i + 4])
        await second.write(from_second[i : i + 4])
    await first.close()
    await second.close()
    return from_first, from_second


async def _write_sentinels(transport: Transport) -> list[bytes]:
    first, second = transport.sink(), transport.sink()
    await first.write([b"sentinel-first"])
    await second.write([b"sentinel-second"])
    await first.close()
    await second.close()
    return [b"sentinel-first", b"sentinel-second"]


async def _consume_and_ack_everything(transport: Transport, members: int, expected: list[bytes]) -> None:
    """Members 0..members-1 of group "enrich" together read `expected` exactly once, then ack and stop."""
    sources = [transport.member_source("enrich", member, members) for member in range(members)]
    got = await collect_members(sources, len(expected))
    assert Counter(_records([b for batches in got for b in batches])) == Counter(expected)
    for source, batches in zip(sources, got, strict=True):
        if batches:
            await source.ack(batches[-1])
        await source.close()


async def test_concurrent_members_of_a_group_receive_every_record_exactly_once(transport: Transport) -> None:
    transport.require_members()
    from_first, from_second = await _write_from_two_sinks_at_once(transport, 40)

    members = [transport.member_source("enrich", 0, 2), transport.member_source("enrich", 1, 2)]
    got = await collect_members(members, 80)
    per_member = [_records(batches) for batches in got]
    # No record twice, none missing: the members split the records between them.
    assert Counter(per_member[0] + per_member[1]) == Counter(from_first + from_second)
    for records in per_member:
        # Each sink's records still arrive in the order they were written.
        assert [r for r in records if r.startswith(b"first")] == [r for r in from_first if r in records]
        assert [r for r in records if r.startswith(b"second")] == [r for r in from_second if r in records]

    # Each member commits its own position without overwriting the other's.
    for member, batches in zip(members, got, strict=True):
        if batches:
            await member.ack(batches[-1])
        await member.close()
    sentinels = await _write_sentinels(transport)
    restarted = [transport.member_source("enrich", 0, 2), transport.member_source("enrich", 1, 2)]
    after_restart = await collect_members(restarted, 2)
    assert sorted(_records([b for batches in after_restart for b in batches])) == sentinels
    for source in restarted:
        await source.close()


@pytest.mark.parametrize(("before", "after"), [(1, 2), (2, 1), (2, 3)], ids=["1-to-2", "2-to-1", "2-to-3"])
async def test_changing_the_number_of_members_keeps_committed_positions(
    transport: Transport, before: int, after: int
) -> None:
    transport.require_members()
    from_first, from_second = await _write_from_two_sinks_at_once(transport, 20)
    await _consume_and_ack_everything(transport, before, from_first + from_second)

    # Restart the group with a different number of members: nothing acked is delivered again.
    sentinels = await _write_sentinels(transport)
    restarted = [transport.member_source("enrich", member, after) for member in range(after)]
    got = await collect_members(restarted, 2)
    assert sorted(_records([b for batches in got for b in batches])) == sentinels
    for source in restarted:
        await source.close()
