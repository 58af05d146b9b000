"""What redis:// does beyond the shared transport contract: groups, claiming, cleanup, trimming, durability, failures."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio
from redis.typing import StreamIdT

from plowline.errors import ConfigError, TransportError
from plowline.streams import Batch, open_sink, open_source
from plowline.streams.redis import RedisPosition, RedisSink, RedisSource, parse_url

from .conftest import REDIS_ADDRESS, Collect, collect_members, redis_stream_url


def _records(batches: list[Batch]) -> list[bytes]:
    return [bytes(record) for batch in batches for record in batch.records]


def _key(url: str) -> str:
    return parse_url(url).stream


def _redis_source(url: str, group: str) -> RedisSource:
    return cast(RedisSource, open_source(url, group))


def _redis_sink(url: str) -> RedisSink:
    return cast(RedisSink, open_sink(url))


@pytest.fixture
async def raw() -> AsyncIterator[redis.asyncio.Redis]:
    """A plain client on the test server, to set up and inspect what the transport cannot show."""
    redis_stream_url()  # skips, saying why, when Redis is not reachable
    host, _, port = REDIS_ADDRESS.rpartition(":")
    client = redis.asyncio.Redis(host=host, port=int(port))
    yield client
    await client.aclose()


async def _eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it is true; fail saying `what` never happened (after 10 s, not a timing claim)."""
    try:
        async with asyncio.timeout(10):
            while not await check():  # noqa: ASYNC110 (Redis state cannot be awaited as an event)
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"{what} never happened")


async def _read_forever(source: RedisSource, out: list[Batch]) -> None:
    stream = cast(AsyncGenerator[Batch, None], source.batches(100, 0.02))
    async with aclosing(stream):
        async for batch in stream:
            out.append(batch)


async def _wait_until_blocked(raw: redis.asyncio.Redis, source: RedisSource) -> int:
    """The id of the connection on which `source` is blocked in XREADGROUP."""
    name = source.client_name
    found: list[int] = []

    async def blocked() -> bool:
        for client in await raw.client_list():
            if client["name"] == name and client["cmd"] == "xreadgroup" and "b" in client["flags"]:
                found.append(int(client["id"]))
                return True
        return False

    await _eventually(blocked, f"{name} blocking in XREADGROUP")
    return found[0]


async def _consumers(raw: redis.asyncio.Redis, url: str, group: str) -> dict[str, int]:
    """Consumer name → pending count of a group."""
    infos = await raw.xinfo_consumers(_key(url), group)
    return {info["name"].decode(): int(info["pending"]) for info in infos}


# --- URLs ---------------------------------------------------------------------------------------------


def test_url_parameters_are_parsed() -> None:
    url = parse_url(
        "redis://user:s%40cret@cache.internal:7000/plowline:raw?db=3&maxlen=10&wait_aof=0"
        "&claim_idle_s=2.5&max_record_bytes=99&member=1&members=2"
    )
    assert (url.host, url.port, url.db, url.stream) == ("cache.internal", 7000, 3, "plowline:raw")
    assert (url.username, url.password) == ("user", "s@cret")
    assert (url.maxlen, url.wait_aof, url.claim_idle_s, url.max_record_bytes) == (10, "off", 2.5, 99)
    assert "s@cret" not in repr(url)

    defaults = parse_url("redis://localhost/raw")
    assert (defaults.port, defaults.db, defaults.maxlen, defaults.wait_aof) == (6379, 0, None, "auto")
    assert (defaults.claim_idle_s, defaults.max_record_bytes) == (30.0, 1_000_000)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://localhost:6379/", "names no stream"),
        ("redis:///raw", "names no host"),
        ("redis://localhost/0", "looks like a database number"),
        ("redis://localhost/raw?maxlength=5", "unknown parameter"),
        ("redis://localhost/raw?wait_aof=yes", "wait_aof"),
        ("redis://localhost/raw?claim_idle_s=0", "claim_idle_s"),
        ("redis://localhost/raw?claim_idle_s=soon", "claim_idle_s"),
        ("redis://localhost/raw?maxlen=0", "maxlen"),
        ("redis://localhost/raw?max_record_bytes=600000000", "max_record_bytes"),
        ("redis://localhost/raw?member=2&members=2", "member"),
        ("redis://localhost:http/raw", "port"),
    ],
    ids=[
        "no-stream",
        "no-host",
        "digits",
        "unknown",
        "wait-aof",
        "claim-zero",
        "claim-text",
        "maxlen",
        "max-bytes",
        "member",
        "port",
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_url(url)


def test_a_source_needs_a_group_name() -> None:
    with pytest.raises(ConfigError, match="consumer group"):
        open_source("redis://localhost/raw", "")


# --- consumer groups ----------------------------------------------------------------------------------


async def test_a_new_group_reads_the_history_of_an_existing_stream(raw: redis.asyncio.Redis, collect: Collect) -> None:
    url = redis_stream_url()
    sink = open_sink(url)
    await sink.write([b"before-1", b"before-2", b"before-3"])
    assert await raw.xinfo_groups(_key(url)) == []

    source = _redis_source(url, "late")
    assert _records(await collect(source, 3)) == [b"before-1", b"before-2", b"before-3"]
    assert [group["name"] for group in await raw.xinfo_groups(_key(url))] == [b"late"]
    await source.close()
    await sink.close()


async def test_an_existing_group_keeps_its_position(raw: redis.asyncio.Redis, collect: Collect) -> None:
    url = redis_stream_url()
    sink = open_sink(url)
    await sink.write([b"old"])
    await raw.xgroup_create(_key(url), "enrich", id="$")  # created by someone else, after "old"
    await sink.write([b"new"])

    source = open_source(url, "enrich")
    assert _records(await collect(source, 1)) == [b"new"]
    await source.close()
    await sink.close()


async def test_a_crashed_consumers_pending_entries_are_claimed(raw: redis.asyncio.Redis, collect: Collect) -> None:
    url = redis_stream_url("claim_idle_s=0.2")
    sink = open_sink(url)
    expected = [f"r{i}".encode() for i in range(5)]
    await sink.write(expected)
    await sink.close()
    # A worker read them and died without acking: they stay pending on its consumer name.
    await raw.xgroup_create(_key(url), "enrich", id="0")
    await raw.xreadgroup("enrich", "crashed-worker", {_key(url): ">"}, count=10)
    assert await _consumers(raw, url, "enrich") == {"crashed-worker": 5}

    source = _redis_source(url, "enrich")
    batches = await collect(source, 5)
    assert _records(batches) == expected
    assert (await _consumers(raw, url, "enrich"))[source.consumer] == 5
    await source.ack(batches[-1])
    assert (await raw.xpending(_key(url), "enrich"))["pending"] == 0
    await source.close()


async def test_two_sources_of_a_group_split_records_without_duplicates(
    raw: redis.asyncio.Redis, collect: Collect
) -> None:
    url = redis_stream_url("claim_idle_s=60")  # nothing is claimed during the test
    sink = open_sink(url)
    first_ten = [f"a{i}".encode() for i in range(10)]
    await sink.write(first_ten)
    one, two = _redis_source(url, "enrich"), _redis_source(url, "enrich")

    # `one` holds five records un-acked: `two` gets the other five, not the same ones again.
    from_one = _records(await collect(one, 5, max_records=5))
    from_two = _records(await collect(two, 5, max_records=5))
    assert sorted(from_one + from_two) == sorted(first_ten)

    more = [f"b{i:02d}".encode() for i in range(60)]
    reading = asyncio.create_task(collect_members([one, two], 60))
    for i in range(0, 60, 3):
        await sink.write(more[i : i + 3])
    got = await reading
    assert Counter(_records(got[0]) + _records(got[1])) == Counter(more)
    assert set(await _consumers(raw, url, "enrich")) == {one.consumer, two.consumer}
    for source, batches in zip((one, two), got, strict=True):
        if batches:
            await source.ack(batches[-1])
        await source.close()
    await sink.close()


async def test_dead_consumers_are_deleted_and_a_closed_source_leaves(
    raw: redis.asyncio.Redis, collect: Collect
) -> None:
    url = redis_stream_url("claim_idle_s=0.2")
    sink = open_sink(url)
    await sink.write([b"r0", b"r1"])
    await raw.xgroup_create(_key(url), "enrich", id="0")
    await raw.xgroup_createconsumer(_key(url), "enrich", "gone-empty")
    await raw.xreadgroup("enrich", "gone-busy", {_key(url): ">"}, count=10)

    source = _redis_source(url, "enrich")
    batches = await collect(source, 2)
    await source.ack(batches[-1])

    # While the source keeps reading, its claim cycles delete consumers with nothing pending left idle.
    got: list[Batch] = []
    reading = asyncio.create_task(_read_forever(source, got))

    async def only_this_source_left() -> bool:
        return set(await _consumers(raw, url, "enrich")) == {source.consumer}

    await _eventually(only_this_source_left, "deleting the consumers gone-empty and gone-busy")
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert got == []

    await source.close()  # nothing pending: it removes its own name too
    assert await _consumers(raw, url, "enrich") == {}
    await sink.close()


async def test_a_source_first_rereads_entries_delivered_to_it_but_never_yielded(
    raw: redis.asyncio.Redis, collect: Collect
) -> None:
    url = redis_stream_url("claim_idle_s=60")
    sink = open_sink(url)
    await sink.write([b"lost-reply-1", b"lost-reply-2"])
    source = _redis_source(url, "enrich")
    # As if XREADGROUP's reply had been lost with the connection: delivered to this consumer, never seen.
    await raw.xgroup_create(_key(url), "enrich", id="0")
    await raw.xreadgroup("enrich", source.consumer, {_key(url): ">"}, count=10)
    await sink.write([b"new"])

    assert _records(await collect(source, 3)) == [b"lost-reply-1", b"lost-reply-2", b"new"]
    await source.close()
    await sink.close()


async def test_a_closed_source_releases_its_entries_to_the_next_at_once(
    raw: redis.asyncio.Redis, collect: Collect
) -> None:
    url = redis_stream_url("claim_idle_s=3600")  # without the release, redelivery would take an hour
    sink = open_sink(url)
    await sink.write([b"r0", b"r1", b"r2"])
    first = open_source(url, "enrich")
    assert len(_records(await collect(first, 3))) == 3
    await first.close()

    restarted = open_source(url, "enrich")
    assert _records(await collect(restarted, 3)) == [b"r0", b"r1", b"r2"]
    await restarted.close()
    await sink.close()


async def test_acking_a_batch_of_another_source_is_refused(collect: Collect) -> None:
    url = redis_stream_url()
    sink = open_sink(url)
    await sink.write([b"r"])
    one, two = open_source(url, "enrich"), open_source(url, "enrich")
    batch = (await collect(one, 1))[0]
    assert isinstance(batch.position, RedisPosition)
    with pytest.raises(ValueError, match="ack it with the source that read it"):
        await two.ack(batch)
    with pytest.raises(TypeError, match="redis"):
        await one.ack(Batch(records=[b"r"], position=7))
    for closable in (one, two, sink):
        await closable.close()


# --- trimming -----------------------------------------------------------------------------------------


async def test_maxlen_trims_the_stream_and_the_default_keeps_everything(
    raw: redis.asyncio.Redis, collect: Collect
) -> None:
    trimmed_url, kept_url = redis_stream_url("maxlen=5"), redis_stream_url()
    records = [f"r{i:02d}".encode() for i in range(12)]
    for url in (trimmed_url, kept_url):
        sink = open_sink(url)
        for i in range(0, 12, 4):
            await sink.write(records[i : i + 4])
        await sink.close()

    assert await raw.xlen(_key(trimmed_url)) == 5
    assert await raw.xlen(_key(kept_url)) == 12
    source = open_source(trimmed_url, "archive")
    assert _records(await collect(source, 5)) == records[-5:]
    await source.close()


async def test_entries_trimmed_while_pending_are_counted_as_dropped(raw: redis.asyncio.Redis, collect: Collect) -> None:
    url = redis_stream_url("claim_idle_s=0.2")
    sink = open_sink(url)
    await sink.write([b"r0", b"r1", b"r2"])
    await raw.xgroup_create(_key(url), "enrich", id="0")
    await raw.xreadgroup("enrich", "crashed-worker", {_key(url): ">"}, count=10)
    ids: list[StreamIdT] = [
        entry["message_id"] for entry in await raw.xpending_range(_key(url), "enrich", "-", "+", 10)
    ]
    await raw.xclaim(_key(url), "enrich", "crashed-worker", 0, ids, idle=60_000, justid=True)  # long idle
    await raw.xtrim(_key(url), maxlen=0, approximate=False)  # gone before anyone acked them
    await sink.write([b"after"])

    source = _redis_source(url, "enrich")
    assert _records(await collect(source, 1)) == [b"after"]
    assert source.dropped == 3
    await source.close()
    await sink.close()


# --- durability ---------------------------------------------------------------------------------------


async def test_without_aof_writes_do_not_wait_and_wait_aof_1_is_refused(raw: redis.asyncio.Redis) -> None:
    if (await raw.info("persistence"))["aof_enabled"]:
        pytest.skip(f"the Redis at {REDIS_ADDRESS} has AOF on; this checks a server without persistence")
    url = redis_stream_url()
    sink = _redis_sink(url)
    await sink.write([b"r"])
    assert sink.durability == "memory"  # survives our processes crashing, not a Redis restart
    await sink.close()

    strict = _redis_sink(f"{url}&wait_aof=1")
    with pytest.raises(ConfigError, match=r"wait_aof=1 but .* has appendonly off"):
        await strict.write([b"never written"])
    await strict.close()
    assert await raw.xlen(_key(url)) == 1


class _PrivateRedis:
    """A redis-server this test starts in its own directory and port, and stops by its process handle."""

    def __init__(self, directory: Path, *options: str) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            pytest.skip("no redis-server executable to start a private server with its own persistence settings")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.command = [
            executable,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--logfile",
            str(directory / "redis.log"),
            *options,
        ]
        self.process: asyncio.subprocess.Process | None = None

    def url(self, stream: str, query: str = "") -> str:
        return f"redis://127.0.0.1:{self.port}/{stream}" + (f"?{query}" if query else "")

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        client = redis.asyncio.Redis(port=self.port)

        async def answers() -> bool:
            try:
                return bool(await client.ping())
            except redis.RedisError:
                return False

        try:
            await _eventually(answers, f"redis-server on port {self.port} starting")
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """Stop it the hard way (SIGKILL): no shutdown save, no final fsync."""
        if self.process is not None:
            self.process.kill()
            await self.process.wait()
            self.process = None


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[_PrivateRedis]]]:
    servers: list[_PrivateRedis] = []

    async def start(*options: str) -> _PrivateRedis:
        server = _PrivateRedis(tmp_path, *options)
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        await server.kill()


async def test_with_aof_acked_writes_survive_a_redis_crash(
    private_redis: Callable[..., Awaitable[_PrivateRedis]], collect: Collect
) -> None:
    server = await private_redis("--appendonly", "yes", "--appendfsync", "always")
    sink = _redis_sink(server.url("raw", "wait_aof=1"))  # 1: refuse to run unless fsyncs are confirmed
    await sink.write([b"r0", b"r1"])
    await sink.write([b"r2"])
    assert sink.durability == "aof-fsync"
    await sink.close()

    await server.kill()
    await server.start()
    source = open_source(server.url("raw"), "enrich")
    assert _records(await collect(source, 3)) == [b"r0", b"r1", b"r2"]
    await source.close()


async def test_a_sink_fails_while_redis_is_down_and_recovers_after(
    private_redis: Callable[..., Awaitable[_PrivateRedis]], collect: Collect
) -> None:
    server = await private_redis("--appendonly", "no")
    sink = _redis_sink(server.url("raw"))
    await sink.write([b"before-restart"])
    assert sink.durability == "memory"
    assert sink.healthy()

    await server.kill()
    with pytest.raises(TransportError, match="XADD"):
        await sink.write([b"while-down"])
    assert not sink.healthy()

    await server.start()
    await sink.write([b"after-restart"])
    assert sink.healthy()
    await sink.close()
    source = open_source(server.url("raw"), "enrich")
    # Without persistence the restart lost the acked "before-restart": what "memory" durability means.
    assert _records(await collect(source, 1)) == [b"after-restart"]
    await source.close()


# --- connection failures ------------------------------------------------------------------------------


async def test_a_dropped_connection_mid_read_is_a_transport_error_then_reading_resumes(
    raw: redis.asyncio.Redis, collect: Collect
) -> None:
    url = redis_stream_url()
    source = _redis_source(url, "enrich")
    got: list[Batch] = []
    reading = asyncio.create_task(_read_forever(source, got))
    await raw.client_kill_filter(_id=str(await _wait_until_blocked(raw, source)))
    with pytest.raises(TransportError, match="reading"):
        await reading

    sink = open_sink(url)
    await sink.write([b"after-the-drop"])
    assert _records(await collect(source, 1)) == [b"after-the-drop"]
    await source.close()
    await sink.close()


async def test_a_dropped_sink_connection_is_a_transport_error_then_the_next_write_reconnects(
    raw: redis.asyncio.Redis, collect: Collect
) -> None:
    url = redis_stream_url()
    sink = _redis_sink(url)
    await sink.write([b"first"])
    killed = [client["id"] for client in await raw.client_list() if client["name"] == sink.client_name]
    assert len(killed) == 1
    await raw.client_kill_filter(_id=str(killed[0]))

    with pytest.raises(TransportError, match="XADD"):
        await sink.write([b"second"])  # sent on the dead connection: not acknowledged, so not durable
    assert not sink.healthy()
    await sink.write([b"second"])  # the caller's retry, on a new connection
    assert sink.healthy()
    await sink.close()
    source = open_source(url, "enrich")
    assert _records(await collect(source, 2)) == [b"first", b"second"]
    await source.close()


async def test_close_wakes_a_reader_blocked_in_another_task(raw: redis.asyncio.Redis) -> None:
    source = _redis_source(redis_stream_url(), "enrich")
    got: list[Batch] = []
    reading = asyncio.create_task(_read_forever(source, got))
    await _wait_until_blocked(raw, source)
    await source.close()
    async with asyncio.timeout(10):
        await reading  # ends quietly: no TransportError for a connection closed on purpose
    assert got == []
