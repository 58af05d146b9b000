"""Stream test fixtures: one `transport` per implementation, a `collect` helper, memory isolation."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from plowline.streams import Batch, Sink, Source, open_sink, open_source
from plowline.streams.memory import reset_memory_streams


@dataclass(frozen=True)
class Transport:
    """One transport under test, named by the URL its sinks and sources are opened with."""

    name: str
    url: str

    def sink(self) -> Sink:
        return open_sink(self.url)

    def source(self, group: str) -> Source:
        return open_source(self.url, group)

    def member_source(self, group: str, member: int, members: int) -> Source:
        """A source for member `member` of `members` consumers of `group` (`?member=I&members=N`)."""
        separator = "&" if "?" in self.url else "?"
        return open_source(f"{self.url}{separator}member={member}&members={members}", group)

    def require_members(self) -> None:
        """Skip, saying why, unless several members of one group can share this transport's stream."""
        if self.name in _NO_MEMBERS:
            pytest.skip(f"{self.name}:// cannot split a group among members: {_NO_MEMBERS[self.name]}")


# One entry per transport: a new one (nats, redis) is one more line here, skipping itself when its
# server is not reachable.
_URLS: dict[str, Callable[[Path], str]] = {
    "memory": lambda tmp_path: f"memory://contract-{uuid.uuid4().hex}",
    "file": lambda tmp_path: f"file://{tmp_path / 'log'}",
    "redis": lambda tmp_path: redis_stream_url(),  # a new key per test, deleted after it
    "nats": lambda tmp_path: nats_stream_url(),  # a new JetStream stream per test, deleted after it
}


# Transports whose streams cannot be split among several members of one consumer group, and why.
_NO_MEMBERS: dict[str, str] = {
    "memory": "one unpartitioned in-process list, so members > 1 is a ConfigError",
}


@pytest.fixture(params=list(_URLS), ids=list(_URLS))
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Transport:
    name = cast(str, request.param)
    return Transport(name, _URLS[name](tmp_path))


@pytest.fixture(autouse=True)
def _isolated_memory_streams() -> Iterator[None]:
    yield
    reset_memory_streams()


# --- redis: a new stream key per test on a local server (PLOWLINE_TEST_REDIS=host:port), deleted after it ---

REDIS_ADDRESS = os.environ.get("PLOWLINE_TEST_REDIS", "127.0.0.1:6379")
_redis_keys: list[str] = []
_redis_down: list[str] = []  # why Redis is unreachable, once known (checked once per session)


def _redis_client() -> redis.Redis:
    host, _, port = REDIS_ADDRESS.rpartition(":")
    return redis.Redis(host=host, port=int(port), socket_connect_timeout=1, socket_timeout=5)


def redis_stream_url(query: str = "claim_idle_s=1") -> str:
    """A redis:// URL on a new key, deleted after the test; skips, saying why, when Redis is not reachable."""
    if not _redis_down:
        try:
            with _redis_client() as client:
                client.ping()
            _redis_down.append("")
        except redis.RedisError as exc:
            _redis_down.append(
                f"Redis at {REDIS_ADDRESS} is not reachable ({exc}): run scripts/ensure-services.sh, "
                "or point PLOWLINE_TEST_REDIS=host:port at one"
            )
    if _redis_down[0]:
        pytest.skip(_redis_down[0])
    key = f"plowline-test:{uuid.uuid4().hex}"
    _redis_keys.append(key)
    return f"redis://{REDIS_ADDRESS}/{key}" + (f"?{query}" if query else "")


@pytest.fixture(autouse=True)
def _delete_redis_keys() -> Iterator[None]:
    yield
    if _redis_keys:
        with _redis_client() as client:
            client.delete(*_redis_keys)
        _redis_keys.clear()


# --- nats: a new JetStream stream per test on a local server (PLOWLINE_TEST_NATS=host:port), deleted after it ---

NATS_ADDRESS = os.environ.get("PLOWLINE_TEST_NATS", "127.0.0.1:4222")
_nats_streams: list[str] = []
_nats_down: list[str] = []  # why NATS JetStream is unusable, once known (checked once per session)


def _run_nats(action: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    """Run `action(client)` on a new connection to the test server, in a loop of its own (also from a test's loop)."""
    import concurrent.futures

    import nats

    async def main() -> Any:
        # One quick try: nats-py's own connect retries would otherwise take minutes to give up.
        client = await nats.connect(
            f"nats://{NATS_ADDRESS}", connect_timeout=1, max_reconnect_attempts=1, reconnect_time_wait=0.1,
            allow_reconnect=False,
        )
        try:
            return await action(client)
        finally:
            await client.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def nats_stream_url(query: str = "ack_wait_s=1") -> str:
    """A nats:// URL on a new stream, deleted after the test; skips, saying why, when JetStream is not reachable."""
    import nats.errors

    if not _nats_down:
        try:
            _run_nats(lambda client: client.jetstream().account_info())
            _nats_down.append("")
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            _nats_down.append(
                f"NATS JetStream at {NATS_ADDRESS} is not reachable ({exc!r}): run scripts/ensure-services.sh, "
                "or point PLOWLINE_TEST_NATS=host:port at a nats-server started with -js"
            )
    if _nats_down[0]:
        pytest.skip(_nats_down[0])
    stream = f"plowline-test-{uuid.uuid4().hex}"
    _nats_streams.append(stream)
    return f"nats://{NATS_ADDRESS}/{stream}" + (f"?{query}" if query else "")


@pytest.fixture(autouse=True)
def _delete_nats_streams() -> Iterator[None]:
    yield
    if _nats_streams:
        import contextlib

        import nats.js.errors

        names = list(_nats_streams)
        _nats_streams.clear()

        async def delete(client: Any) -> None:
            for name in names:
                with contextlib.suppress(nats.js.errors.NotFoundError):  # a stream the test never opened
                    await client.jsm().delete_stream(name)

        _run_nats(delete)


Collect = Callable[..., Coroutine[Any, Any, list[Batch]]]


async def _collect(source: Source, count: int, *, max_records: int = 500, max_wait_s: float = 0.02) -> list[Batch]:
    """Read batches until at least `count` records arrived; fail (not hang) if they never do."""
    batches: list[Batch] = []
    received = 0
    stream = cast(AsyncGenerator[Batch, None], source.batches(max_records, max_wait_s))
    async with asyncio.timeout(10), aclosing(stream):
        async for batch in stream:
            batches.append(batch)
            received += len(batch.records)
            if received >= count:
                break
    return batches


@pytest.fixture
def collect() -> Collect:
    return _collect


async def collect_members(sources: list[Source], count: int, *, max_records: int = 7) -> list[list[Batch]]:
    """Read several sources at once until together they received at least `count` records.

    Returns each source's batches. Fails (not hangs) if the records never arrive, and re-raises
    whatever a reader raised.
    """
    got: list[list[Batch]] = [[] for _ in sources]
    enough = asyncio.Event()

    async def read(batches: list[Batch], source: Source) -> None:
        stream = cast(AsyncGenerator[Batch, None], source.batches(max_records, 0.02))
        try:
            async with aclosing(stream):
                async for batch in stream:
                    batches.append(batch)
                    if sum(len(b.records) for per_source in got for b in per_source) >= count:
                        enough.set()
                        return
        finally:
            enough.set()  # also when a reader fails: the caller then sees its exception

    tasks = [asyncio.create_task(read(batches, source)) for batches, source in zip(got, sources, strict=True)]
    try:
        async with asyncio.timeout(10):
            await enough.wait()
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
    return got
