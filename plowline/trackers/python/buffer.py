"""Bounded event buffers: in memory, or on disk (SQLite) so that a process restart loses nothing.

The contract every buffer keeps (the emitters rely on it):

* `put` stores one encoded event and never blocks on the network. When the buffer already holds `capacity`
  events it **drops the oldest** one to make room: the newest data is usually the most useful, and tracking
  must never stall the application (a tracker that blocks would turn a collector outage into an outage of the
  application). Every drop is counted in `dropped`, and logged as a warning (on the 1st, 2nd, 4th, 8th ... drop,
  so an outage does not flood the log).
* `peek` returns the oldest events without removing them; `remove` deletes them once the collector has
  acknowledged them. So an event leaves the buffer only when delivered (or refused for good, or dropped),
  and a crash between sending and `remove` means it is sent again: delivery is at least once, and the event's
  `eid` makes the redelivery harmless downstream (loaders keep one event per event_id and fingerprint).
* Buffers are thread-safe. One emitter sends from a buffer at a time (the emitters serialise their sends).

On-disk format (`SqliteBuffer`): one SQLite database file, table `events(id INTEGER PRIMARY KEY AUTOINCREMENT,
event BLOB)`, `event` being the event's JSON object as it will be sent (UTF-8, without `stm`); WAL journal. An
exclusive `flock` on `<path>.lock` makes sure one tracker process at a time uses a buffer file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

logger = logging.getLogger(__name__)

DEFAULT_MEMORY_CAPACITY = 10_000
DEFAULT_DISK_CAPACITY = 1_000_000


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """One event waiting to be sent: the buffer's id for it and its encoded JSON object."""

    id: int
    data: bytes


class EventBuffer(Protocol):
    """Where events wait until the collector acknowledges them (see the module docstring for the contract)."""

    capacity: int

    @property
    def dropped(self) -> int:
        """Events dropped (oldest first) because the buffer was full."""

    def put(self, data: bytes) -> None:
        """Store one encoded event; drop the oldest one first if the buffer is full."""

    def peek(self, max_events: int) -> list[BufferedEvent]:
        """The oldest `max_events` events, oldest first, left in the buffer."""

    def remove(self, ids: Sequence[int]) -> None:
        """Forget these events (delivered, or refused for good). Unknown ids are ignored."""

    def __len__(self) -> int:
        """How many events are waiting."""

    def close(self) -> None:
        """Release the buffer's resources; what it holds stays (on disk) or is lost (in memory)."""


class _DropCounter:
    """Counts dropped events and warns on the 1st, 2nd, 4th, 8th ... drop."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.dropped = 0

    def count(self, events: int) -> None:
        before = self.dropped
        self.dropped += events
        if self.dropped.bit_length() > before.bit_length():  # crossed a power of two
            logger.warning("tracker buffer %s is full: %d oldest events dropped so far", self.where, self.dropped)


class MemoryBuffer:
    """A bounded in-memory buffer: fast, lost when the process exits."""

    def __init__(self, capacity: int = DEFAULT_MEMORY_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._events: deque[BufferedEvent] = deque()
        self._next_id = 0
        self._lock = threading.Lock()
        self._drops = _DropCounter("memory")

    @property
    def dropped(self) -> int:
        return self._drops.dropped

    def put(self, data: bytes) -> None:
        with self._lock:
            if len(self._events) >= self.capacity:
                self._events.popleft()
                self._drops.count(1)
            self._next_id += 1
            self._events.append(BufferedEvent(self._next_id, data))

    def peek(self, max_events: int) -> list[BufferedEvent]:
        with self._lock:
            return [self._events[i] for i in range(min(max_events, len(self._events)))]

    def remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        wanted = set(ids)
        with self._lock:
            # Sent batches are the oldest events: pop them off the front; rebuild only if others remain.
            while self._events and self._events[0].id in wanted:
                wanted.discard(self._events.popleft().id)
            if wanted:
                self._events = deque(event for event in self._events if event.id not in wanted)

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def close(self) -> None:
        pass


class BufferLocked(RuntimeError):
    """Another process (or another buffer in this one) is using the buffer file."""


class SqliteBuffer:
    """A bounded buffer in a SQLite file: what was tracked survives a crash or restart of the process.

    `synchronous="NORMAL"` (the default) survives the process being killed; `"FULL"` also survives a power
    failure, at the cost of an fsync per `put`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        capacity: int = DEFAULT_DISK_CAPACITY,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.path = Path(path)
        self.capacity = capacity
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(f"{self.path}.lock", "a+b")  # noqa: SIM115 - held for the buffer's lifetime
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise BufferLocked(f"{self.path} is in use by another tracker (lock {self.path}.lock)") from None
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY AUTOINCREMENT, event BLOB NOT NULL)"
        )
        self._lock = threading.Lock()
        self._count = int(self._db.execute("SELECT count(*) FROM events").fetchone()[0])
        self._drops = _DropCounter(str(self.path))
        self._closed = False

    @property
    def dropped(self) -> int:
        return self._drops.dropped

    def put(self, data: bytes) -> None:
        with self._lock:
            excess = self._count + 1 - self.capacity
            if excess <= 0:  # the common case: one statement, its own transaction (autocommit)
                self._db.execute("INSERT INTO events (event) VALUES (?)", (data,))
                self._count += 1
                return
            self._db.execute("BEGIN IMMEDIATE")  # full: drop the oldest and insert atomically
            try:
                self._db.execute(
                    "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?)", (excess,)
                )
                self._db.execute("INSERT INTO events (event) VALUES (?)", (data,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += 1 - excess
            self._drops.count(excess)

    def peek(self, max_events: int) -> list[BufferedEvent]:
        with self._lock:
            rows = self._db.execute("SELECT id, event FROM events ORDER BY id LIMIT ?", (max_events,)).fetchall()
        return [BufferedEvent(int(row[0]), bytes(row[1])) for row in rows]

    def remove(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = self._db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids]).rowcount
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count -= max(removed, 0)

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
