"""memory://NAME: an in-process transport for tests, and the RecordingSink test double."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from plowline.errors import ConfigError, TransportError
from plowline.streams.base import Batch
from plowline.streams.members import MEMBER_PARAMS, Membership, parse_membership
from plowline.streams.url_params import UrlParams, check_records

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "MemorySink",
    "MemorySource",
    "RecordingSink",
    "open_memory_sink",
    "open_memory_source",
    "reset_memory_streams",
]

DEFAULT_MAX_RECORD_BYTES = 1_000_000


@dataclass
class _Stream:
    """One named stream: every record ever written, and each consumer group's committed offset."""

    records: list[bytes] = field(default_factory=list)
    committed: dict[str, int] = field(default_factory=dict)
    waiters: set[asyncio.Future[None]] = field(default_factory=set)

    def notify(self) -> None:
        for waiter in self.waiters:
            loop = waiter.get_loop()
            # A reader may run on another thread's event loop; wake it on its own loop.
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, waiter)
        self.waiters.clear()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


_BROKER: dict[str, _Stream] = {}


def _stream(name: str) -> _Stream:
    return _BROKER.setdefault(name, _Stream())


def reset_memory_streams() -> None:
    """Forget every memory:// stream and its committed offsets (for test isolation)."""
    _BROKER.clear()


def _check_types(records: Sequence[bytes]) -> None:
    """Raise ValueError for a record that is not bytes-like."""
    for record in records:
        if not isinstance(record, bytes | bytearray | memoryview):
            raise ValueError(f"records must be bytes, got {type(record).__name__}")



_URL_PARAMS = frozenset({"max_record_bytes"}) | MEMBER_PARAMS


def _parse_url(url: str) -> tuple[str, int, Membership]:
    parts = urlsplit(url)
    if parts.scheme != "memory":
        raise ConfigError("stream url", f"{url!r} is not a memory:// url", "use memory://NAME")
    name = parts.netloc + parts.path
    if not name:
        raise ConfigError("stream url", f"{url!r} names no stream", "use memory://NAME")
    params = UrlParams(url, parts.query, _URL_PARAMS)
    max_record_bytes = params.integer_or("max_record_bytes", DEFAULT_MAX_RECORD_BYTES, 1, 1 << 62)
    return name, max_record_bytes, parse_membership(params.values, url)


class MemorySink:
    """Appends records to a named in-process stream; durable as soon as `write` returns."""

    def __init__(self, name: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.name = name
        self.max_record_bytes = max_record_bytes
        self._closed = False

    async def write(self, records: Sequence[bytes]) -> None:
        if self._closed:
            raise RuntimeError(f"memory sink {self.name!r} is closed")
        check_records(records, self.max_record_bytes)
        if not records:
            return
        stream = _stream(self.name)
        stream.records.extend(bytes(record) for record in records)
        stream.notify()

    def healthy(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True


class MemorySource:
    """Reads a named in-process stream for one consumer group, from its last committed offset."""

    def __init__(self, name: str, group: str) -> None:
        self.name = name
        self.group = group
        self._next = _stream(name).committed.get(group, 0)
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    async def batches(self, max_records: int = 500, max_wait_s: float = 0.5) -> AsyncIterator[Batch]:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        stream = _stream(self.name)
        while not self._closed:
            started = time.monotonic()
            while True:
                available = len(stream.records) - self._next
                waited = time.monotonic() - started
                if available >= max_records or (available > 0 and waited >= max_wait_s):
                    break
                await self._wait(stream, None if available == 0 else max_wait_s - waited)
                if self._closed:
                    return
            end = min(len(stream.records), self._next + max_records)
            batch = Batch(records=stream.records[self._next : end], position=end)
            self._next = end
            yield batch

    async def _wait(self, stream: _Stream, wait_s: float | None) -> None:
        """Wait until a record is written or the source is closed, at most `wait_s` (None: no limit)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        stream.waiters.add(waiter)
        try:
            async with asyncio.timeout(wait_s):
                await waiter
        except TimeoutError:
            pass
        finally:
            stream.waiters.discard(waiter)
            self._waiter = None

    async def ack(self, batch: Batch) -> None:
        if not isinstance(batch.position, int):
            raise TypeError("not a batch of a memory:// source")
        committed = _stream(self.name).committed
        committed[self.group] = max(committed.get(self.group, 0), batch.position)

    async def close(self) -> None:
        self._closed = True
        if self._waiter is not None:
            _resolve(self._waiter)


def open_memory_sink(url: str) -> MemorySink:
    """Open `memory://NAME[?max_record_bytes=N]` for writing."""
    name, max_record_bytes, _ = _parse_url(url)
    return MemorySink(name, max_record_bytes)


def open_memory_source(url: str, group: str) -> MemorySource:
    """Open `memory://NAME[?member=0&members=1]` for reading by consumer group `group`.

    A memory stream is one unpartitioned list inside one process, so it has nothing to split among
    several members of a group (and members run in separate processes, which never share it):
    `members` above 1 is a ConfigError.
    """
    name, _, membership = _parse_url(url)
    if not group:
        raise ConfigError("consumer group", "empty group name", "name the consuming subsystem, e.g. 'enrich'")
    if membership.members > 1:
        raise ConfigError(
            "stream url",
            f"members={membership.members} in {url!r}: a memory:// stream has no partitions to split among "
            "the members of a group, and is not shared between processes",
            "use members=1 (one consumer per group) with memory://, or a file:// stream for several members",
        )
    return MemorySource(name, group)


class RecordingSink:
    """A Sink test double: records every write call; can fail on demand and report itself unhealthy."""

    def __init__(self, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES, *, healthy: bool = True) -> None:
        self.max_record_bytes = max_record_bytes
        #: Every write call, in order, including the ones that failed.
        self.calls: list[tuple[bytes, ...]] = []
        #: The write calls that returned successfully (the records this sink made "durable").
        self.writes: list[tuple[bytes, ...]] = []
        self.closed = False
        self._healthy = healthy
        self._failures: list[BaseException] = []

    @property
    def records(self) -> list[bytes]:
        """Every record of every successful write, in order."""
        return [record for write in self.writes for record in write]

    def fail_next(self, times: int = 1, error: BaseException | None = None) -> None:
        """Make the next `times` write calls raise `error` (a TransportError by default)."""
        for _ in range(times):
            self._failures.append(error or TransportError("RecordingSink told to fail"))

    def set_healthy(self, healthy: bool) -> None:
        self._healthy = healthy

    async def write(self, records: Sequence[bytes]) -> None:
        _check_types(records)  # a call that is not bytes cannot be recorded in `calls`
        call = tuple(bytes(record) for record in records)
        self.calls.append(call)
        if self.closed:
            raise RuntimeError("RecordingSink is closed")
        check_records(records, self.max_record_bytes)
        if self._failures:
            raise self._failures.pop(0)
        self.writes.append(call)

    def healthy(self) -> bool:
        return self._healthy

    async def close(self) -> None:
        self.closed = True
