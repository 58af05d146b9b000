"""nats:// specifics beyond the contract suite: stream creation, publish acks, crash redelivery, sharing, restarts."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import api

from plowline.errors import ConfigError, TransportError
from plowline.streams import Batch, open_sink, open_source
from plowline.streams.nats import (
    DEFAULT_ACK_WAIT_S,
    DEFAULT_MAX_RECORD_BYTES,
    NatsSink,
    NatsSource,
    NatsUrl,
    open_nats_sink,
    open_nats_source,
    parse_url,
)

from .conftest import NATS_ADDRESS, Collect, nats_stream_url

_ROOT = Path(__file__).resolve().parents[2]


def _records(batches: list[Batch]) -> list[bytes]:
    return [bytes(record) for batch in batches for record in batch.records]


@asynccontextmanager
async def _client(address: str = NATS_ADDRESS) -> AsyncIterator[NATS]:
    """A connection of the test's own, beside the ones the transport under test holds."""
    # One quick try (nats-py's own connect retries would take minutes to give up), no reconnects after.
    client = await nats.connect(
        f"nats://{address}", connect_timeout=2, max_reconnect_attempts=1, reconnect_time_wait=0.1,
        allow_reconnect=False,
    )
    try:
        yield client
    finally:
        await client.close()


async def _eventually(condition: Callable[[], bool]) -> None:
    """Wait until `condition()` holds; fail (not hang) if it never does."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("the condition never held")


# --- URLs --------------------------------------------------------------------------------------------------


def test_url_defaults() -> None:
    url = parse_url("nats://127.0.0.1/plowline-raw")
    assert url == NatsUrl(servers=("nats://127.0.0.1:4222",), hosts=("127.0.0.1:4222",), stream="plowline-raw")
    assert url.subject == "plowline-raw.records"
    assert url.ack_wait_s == DEFAULT_ACK_WAIT_S
    assert url.max_age_s == 0.0  # keep forever: the stream is the raw archive


def test_url_parameters_cluster_and_credentials() -> None:
    url = parse_url(
        "nats://app:s3cret@n1:4223,n2/raw_2?max_age_s=86400&max_bytes=1000000&replicas=3&max_record_bytes=500"
        "&timeout_s=2.5&max_in_flight=64&ack_wait_s=1&max_ack_pending=99&member=1&members=3"
    )
    assert url.servers == ("nats://app:s3cret@n1:4223", "nats://app:s3cret@n2:4222")
    assert (url.max_age_s, url.max_bytes, url.replicas, url.max_record_bytes) == (86400.0, 1_000_000, 3, 500)
    assert (url.timeout_s, url.max_in_flight, url.ack_wait_s, url.max_ack_pending) == (2.5, 64, 1.0, 99)
    # Credentials never reach messages or reprs.
    assert "s3cret" not in url.where()
    assert "s3cret" not in repr(url)


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("redis://h/s", "nats://"),
        ("nats:///raw", "no host"),
        ("nats://h:99999/raw", "bad host"),
        ("nats://h", "stream"),
        ("nats://h/a.b", "stream"),
        ("nats://h/raw?ack_wait_s=0", "ack_wait_s"),
        ("nats://h/raw?ack_wait_s=soon", "ack_wait_s"),
        ("nats://h/raw?replicas=7", "replicas"),
        ("nats://h/raw?max_in_flight=0", "max_in_flight"),
        ("nats://h/raw?claim_idle_s=1", "unknown parameter"),
        ("nats://h/raw?member=2&members=2", "member"),
    ],
    ids=["scheme", "host", "port", "no-stream", "dotted-stream", "ack-wait-zero", "ack-wait-word", "replicas",
         "in-flight", "unknown", "member"],
)
def test_bad_urls_are_config_errors(url: str, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        parse_url(url)


def test_group_must_be_a_consumer_name() -> None:
    with pytest.raises(ConfigError, match="consumer group"):
        open_source("nats://127.0.0.1/raw", "enrich.v2")


def test_open_by_scheme() -> None:
    assert isinstance(open_sink("nats://127.0.0.1/raw"), NatsSink)
    assert isinstance(open_source("nats://127.0.0.1/raw?member=0&members=4", "enrich"), NatsSource)


# --- the sink: stream creation, acks, limits ------------------------------------------------------------------


async def test_first_write_creates_a_file_stream_that_keeps_records() -> None:
    url = nats_stream_url("max_age_s=3600&max_bytes=50000000")
    sink = open_nats_sink(url)
    await sink.write([b"r"])
    await sink.close()

    async with _client() as client:
        info = await client.jsm().stream_info(parse_url(url).stream)
    assert info.config.subjects == [parse_url(url).subject]
    assert info.config.storage == api.StorageType.FILE
    assert info.config.retention == api.RetentionPolicy.LIMITS
    assert (info.config.max_age, info.config.max_bytes, info.config.num_replicas) == (3600.0, 50_000_000, 1)


async def test_write_returns_once_the_server_stored_every_record_in_order() -> None:
    url = nats_stream_url("max_in_flight=8")  # many more records than acks awaited at once
    sink = open_nats_sink(url)
    expected = [f"record-{i:04d}".encode() for i in range(300)]
    await sink.write(expected[:1])
    await sink.write(expected[1:])
    await sink.close()

    # A connection that never saw the writes finds all of them, in order: the acks meant "stored".
    stream = parse_url(url).stream
    async with _client() as client:
        jsm = client.jsm()
        info = await jsm.stream_info(stream)
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (300, 1, 300)
        for seq in (1, 2, 150, 300):
            assert (await jsm.get_msg(stream, seq)).data == expected[seq - 1]


async def test_max_record_bytes_is_the_servers_max_payload() -> None:
    sink = open_nats_sink(nats_stream_url("max_record_bytes=5000000"))
    assert sink.max_record_bytes == 5_000_000  # not connected yet: what the URL asked for
    await sink.write([b"r"])
    assert sink.max_record_bytes == DEFAULT_MAX_RECORD_BYTES  # this server's max_payload
    with pytest.raises(ValueError, match="max_record_bytes"):
        await sink.write([b"x" * (DEFAULT_MAX_RECORD_BYTES + 1)])
    await sink.close()


async def test_a_stream_capturing_other_subjects_is_a_config_error() -> None:
    url = nats_stream_url()
    stream = parse_url(url).stream
    async with _client() as client:
        await client.jsm().add_stream(name=stream, subjects=[f"{stream}.other"])
    sink = open_nats_sink(url)
    with pytest.raises(ConfigError, match="records"):
        await sink.write([b"r"])
    await sink.close()


async def test_a_deleted_stream_fails_a_write_then_is_created_again(collect: Collect) -> None:
    url = nats_stream_url()
    sink = open_nats_sink(url)
    await sink.write([b"before"])
    async with _client() as client:
        await client.jsm().delete_stream(parse_url(url).stream)

    with pytest.raises(TransportError, match="gone"):
        await sink.write([b"lost"])
    await sink.write([b"after"])  # the caller's retry: the stream exists again
    await sink.close()

    source = open_nats_source(url, "enrich")
    assert _records(await collect(source, 1)) == [b"after"]
    await source.close()


async def test_an_unreachable_server_is_a_transport_error_and_unhealthy() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"nats://127.0.0.1:{port}/raw?timeout_s=0.3"
    sink = open_nats_sink(url)
    assert sink.healthy()  # nothing known to be wrong before the first attempt
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        await sink.write([b"r"])
    assert not sink.healthy()
    await sink.close()

    source = open_nats_source(url, "enrich")
    with pytest.raises(TransportError):
        async with aclosing(source.batches(10, 0.01)) as batches:
            await anext(batches)
    await source.close()


# --- the source: acks, crashes, sharing -------------------------------------------------------------------------

_CRASHING_READER = """
import asyncio, os, sys
from plowline.streams import open_source

async def main() -> None:
    source = open_source(sys.argv[1], "enrich")
    async for batch in source.batches(int(sys.argv[2]), 0.05):
        print("read", len(batch.records), flush=True)
        os._exit(17)  # a crash: no ack, no close, the connection just drops

asyncio.run(main())
"""


async def test_records_of_a_crashed_reader_are_delivered_again_after_ack_wait(collect: Collect) -> None:
    url = nats_stream_url("ack_wait_s=1")
    sink = open_nats_sink(url)
    expected = [f"r{i}".encode() for i in range(10)]
    await sink.write(expected)
    await sink.close()

    crashed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CRASHING_READER, url, "4", cwd=_ROOT, stdout=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(30):
        output, _ = await crashed.communicate()
    assert crashed.returncode == 17
    assert b"read 4\n" in output

    # The next reader gets the six never delivered and, once ack_wait ran out, the four the crashed one
    # held. It acks as it goes (what it held un-acked for ack_wait would come back too).
    restarted = open_nats_source(url, "enrich")
    got: list[bytes] = []
    while not set(expected) <= set(got):
        batches = await collect(restarted, 1)  # fails, not hangs, if the crashed reader's records never return
        await restarted.ack(batches[-1])
        got += _records(batches)
    assert set(got) == set(expected)
    await restarted.close()


async def test_close_releases_unacked_records_at_once(collect: Collect) -> None:
    url = nats_stream_url("ack_wait_s=600")  # nothing here may wait for ack_wait
    sink = open_nats_sink(url)
    expected = [f"r{i}".encode() for i in range(12)]
    await sink.write(expected)

    first = open_nats_source(url, "enrich")
    batches = await collect(first, 12, max_records=5)
    await first.ack(batches[0])
    await first.close()
    with pytest.raises(RuntimeError, match="closed"):
        await first.ack(batches[-1])

    await sink.write([b"after"])
    await sink.close()
    restarted = open_nats_source(url, "enrich")
    # Released in stream order, and ahead of what was written later.
    assert _records(await collect(restarted, 8)) == [*expected[5:], b"after"]
    await restarted.close()


async def test_two_sources_of_a_group_split_the_records_without_duplicates(collect: Collect) -> None:
    url = nats_stream_url("ack_wait_s=600")
    sink = open_nats_sink(url)
    expected = [f"r{i:02d}".encode() for i in range(20)]
    await sink.write(expected)

    first, second = open_nats_source(url, "enrich"), open_nats_source(url, "enrich")
    got: dict[NatsSource, list[Batch]] = {first: [], second: []}
    async with aclosing(first.batches(5, 0.02)) as from_first, aclosing(second.batches(5, 0.02)) as from_second:
        for _ in range(2):
            # Each holds its batch un-acked while the other reads: the group hands out the next records.
            got[first].append(await anext(from_first))
            got[second].append(await anext(from_second))
    firsts, seconds = _records(got[first]), _records(got[second])
    assert not set(firsts) & set(seconds)
    assert Counter(firsts + seconds) == Counter(expected)
    assert firsts == sorted(firsts)
    assert seconds == sorted(seconds)

    with pytest.raises(ValueError, match="another NatsSource"):
        await first.ack(got[second][-1])
    for source, batches in got.items():
        await source.ack(batches[-1])
        await source.close()

    await sink.write([b"sentinel"])
    await sink.close()
    third = open_nats_source(url, "enrich")
    assert _records(await collect(third, 1)) == [b"sentinel"]  # everything before was acked exactly once
    await third.close()


# --- a server restart --------------------------------------------------------------------------------------------

_NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class _Server:
    """A nats-server of the test's own (own port, own store), so restarting it disturbs nobody else's tests."""

    def __init__(self, store: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port: int = probe.getsockname()[1]
        self.store = store
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            _NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            while True:
                try:
                    async with _client(f"127.0.0.1:{self.port}") as client:
                        await client.jetstream().account_info()
                    return
                except (OSError, nats.errors.Error):
                    await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM, as a service manager restarting the server sends; wait until it is gone."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            async with asyncio.timeout(30):
                await self.process.wait()


@pytest.mark.skipif(not os.access(_NATS_SERVER, os.X_OK), reason=f"no nats-server binary at {_NATS_SERVER}")
async def test_records_written_around_a_server_restart_are_read_exactly_once(
    tmp_path: Path, collect: Collect
) -> None:
    server = _Server(tmp_path / "jetstream")
    try:
        await server.start()
        url = f"nats://127.0.0.1:{server.port}/restarted?ack_wait_s=5&timeout_s=30"
        sink, source = open_nats_sink(url), open_nats_source(url, "enrich")
        before = [f"before-{i:02d}".encode() for i in range(50)]
        await sink.write(before)
        batches = await collect(source, 50)
        assert _records(batches) == before
        await source.ack(batches[-1])

        await server.stop()
        await _eventually(lambda: not sink.healthy())
        during = [f"during-{i:02d}".encode() for i in range(25)]
        # Written while the server is down: held by the client, sent once it reconnected, acked then.
        writing = asyncio.create_task(sink.write(during))
        await server.start()
        await writing
        assert sink.healthy()
        after = [f"after-{i:02d}".encode() for i in range(25)]
        await sink.write(after)

        # The same source (reconnected) reads on from its acked position: nothing lost, nothing twice.
        batches = await collect(source, 50)
        assert _records(batches) == during + after
        await source.ack(batches[-1])
        await source.close()

        await sink.write([b"sentinel"])
        await sink.close()
        restarted = open_nats_source(url, "enrich")
        assert _records(await collect(restarted, 1)) == [b"sentinel"]
        await restarted.close()
        async with _client(f"127.0.0.1:{server.port}") as client:
            assert (await client.jsm().stream_info("restarted")).state.messages == 101
    finally:
        await server.stop()
