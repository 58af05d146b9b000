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


# One entry per transport: a new one (nats, redis) is one more line here, skipping itself when its
# server is not reachable.
_URLS: dict[str, Callable[[Path], str]] = {
    "memory": lambda tmp_path: f"memory://contract-{uuid.uuid4().hex}",
    "file": lambda tmp_path: f"file://{tmp_path / 'log'}",
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
