"""Stream test fixtures: one `transport` per implementation, a `collect` helper, memory isolation."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

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
