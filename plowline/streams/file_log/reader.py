"""Reading: FileLogSource tails one group member's partitions; offsets in `_offsets/GROUP/PARTITION.json`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import structlog

from plowline.errors import ConfigError, TransportError
from plowline.streams.base import Batch
from plowline.streams.file_log.framing import (
    End,
    fsync_dir,
    partition_index,
    partitions,
    read_frames,
    segment_name,
    segment_seqs,
)
from plowline.streams.file_log.url import parse_url
from plowline.streams.members import Membership

__all__ = ["FileLogSource", "Position", "open_file_source"]

_POLL_INTERVAL_S = 0.01
_GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_OFFSETS_DIR = "_offsets"

_log = structlog.get_logger(__name__)

#: Per partition ("p-00000"): (segment sequence number, byte offset of the next unread record).
Position = Mapping[str, tuple[int, int]]


@dataclass
class _Cursor:
    """Where one partition is being read: the segment's sequence number and the next byte offset."""

    name: str
    seq: int
    offset: int
    fd: int = -1
    warned_at: tuple[int, int] | None = None


def _mkdir_durably(path: Path) -> None:
    """Create a directory if missing, making its entry in the parent durable."""
    if path.is_dir():
        return
    path.mkdir(exist_ok=True)
    fsync_dir(path.parent)


class FileLogSource:
    """Reads the partitions of a log that one member of a consumer group owns, at least once.

    Member `member` of `members` reads the partitions whose index satisfies `index % members ==
    member`. Committed positions are kept per partition, in `_offsets/GROUP/p-NNNNN.json`, so
    members never overwrite each other's commits and a change of `members` keeps every position.
    """

    def __init__(self, path: str | Path, group: str, *, member: int = 0, members: int = 1) -> None:
        if not _GROUP_RE.match(group):
            raise ConfigError(
                "consumer group", f"{group!r} is not a valid group name", "use letters, digits, '_', '.', '-'"
            )
        self.membership = Membership(member, members)
        self.root = Path(path)
        self.group = group
        self.torn_records_skipped = 0
        self._offsets_dir = self.root / _OFFSETS_DIR / group
        # Where offsets were kept before they were per partition: read as a fallback, never written.
        self._legacy_offsets_path = self.root / _OFFSETS_DIR / f"{group}.json"
        self.root.mkdir(parents=True, exist_ok=True)
        _mkdir_durably(self.root / _OFFSETS_DIR)
        _mkdir_durably(self._offsets_dir)
        self._legacy_offsets = self._load_legacy_offsets()
        self._committed: dict[str, tuple[int, int]] = {}
        for name in self._own_partitions():
            if (pos := self._load_offset(name)) is not None:
                self._committed[name] = pos
        self._cursors: dict[str, _Cursor] = {}
        self._round_robin = 0
        self._closed = False
        self._io_lock = threading.Lock()
        self._ack_lock = asyncio.Lock()

    def _owns(self, name: str) -> bool:
        index = partition_index(name)
        return index is not None and self.membership.owns(index)

    def _own_partitions(self) -> list[str]:
        return [name for name in partitions(self.root) if self._owns(name)]

    def _offset_path(self, name: str) -> Path:
        return self._offsets_dir / f"{name}.json"

    def _load_offset(self, name: str) -> tuple[int, int] | None:
        """The committed position of a partition, or None if this group never committed one."""
        path = self._offset_path(name)
        try:
            data = json.loads(path.read_bytes())
            seq, offset = data["segment"], data["offset"]
            if not (type(seq) is int and type(offset) is int and seq >= 0 and offset >= 0):
                raise ValueError(f"not a position: {data!r}")
            return seq, offset
        except FileNotFoundError:
            return self._legacy_offsets.get(name)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TransportError(f"cannot read committed offset {path}: {exc!r}") from exc

    def _load_legacy_offsets(self) -> dict[str, tuple[int, int]]:
        try:
            data = json.loads(self._legacy_offsets_path.read_bytes())
            return {str(name): (int(seq), int(offset)) for name, (seq, offset) in data["partitions"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TransportError(f"cannot read committed offsets {self._legacy_offsets_path}: {exc!r}") from exc

    async def batches(self, max_records: int = 500, max_wait_s: float = 0.5) -> AsyncIterator[Batch]:
        """Yield batches in order within each partition, polling for data written meanwhile."""
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        while not self._closed:
            records: list[bytes] = []
            started = time.monotonic()
            while True:
                records += await asyncio.to_thread(self._poll, max_records - len(records))
                if len(records) >= max_records or (records and time.monotonic() - started >= max_wait_s):
                    break
                await asyncio.sleep(_POLL_INTERVAL_S)
                if self._closed:
                    return
            position = MappingProxyType({c.name: (c.seq, c.offset) for c in self._cursors.values() if c.seq >= 0})
            yield Batch(records=records, position=position)

    def _poll(self, limit: int) -> list[bytes]:
        with self._io_lock:
            if self._closed:
                return []
            for name in self._own_partitions():
                if name not in self._cursors:
                    committed = self._committed.get(name)
                    if committed is None:
                        # A partition created after this source opened: usually never committed.
                        committed = self._load_offset(name)
                    seq, offset = committed or (-1, 0)
                    self._cursors[name] = _Cursor(name, seq, offset)
            cursors = list(self._cursors.values())
            if not cursors:
                return []
            self._round_robin = (self._round_robin + 1) % len(cursors)
            out: list[bytes] = []
            for cursor in cursors[self._round_robin :] + cursors[: self._round_robin]:
                if len(out) >= limit:
                    break
                out += self._read_partition(cursor, limit - len(out))
            return out

    def _read_partition(self, cursor: _Cursor, limit: int) -> list[bytes]:
        partition_dir = self.root / cursor.name
        out: list[bytes] = []
        while len(out) < limit:
            if cursor.fd < 0 and not self._open_segment(cursor, partition_dir):
                break
            records, cursor.offset, end = read_frames(cursor.fd, cursor.offset, limit - len(out))
            out += records
            if end is End.LIMIT:
                break
            newer = [seq for seq in segment_seqs(partition_dir) if seq > cursor.seq]
            if not newer:
                # The newest segment: a partial record is one still being written. So is a bad CRC,
                # until the writer moves on (skipping it now could skip acknowledged records after it).
                if end is End.CORRUPT and cursor.warned_at != (cursor.seq, cursor.offset):
                    cursor.warned_at = (cursor.seq, cursor.offset)
                    _log.warning(
                        "file_log_corrupt_record_waiting",
                        partition=cursor.name,
                        segment=cursor.seq,
                        offset=cursor.offset,
                    )
                break
            # A newer segment exists, so this one is final: read what the writer finished meanwhile.
            records, cursor.offset, end = read_frames(cursor.fd, cursor.offset, limit - len(out))
            out += records
            if end is End.LIMIT:
                break
            if end is not End.EOF:
                self.torn_records_skipped += 1
                _log.warning(
                    "torn_record_skipped",
                    partition=cursor.name,
                    segment=cursor.seq,
                    offset=cursor.offset,
                    reason=end.value,
                )
            os.close(cursor.fd)
            cursor.fd, cursor.seq, cursor.offset = -1, min(newer), 0
        return out

    def _open_segment(self, cursor: _Cursor, partition_dir: Path) -> bool:
        """Open the cursor's segment, or the first one after it if it does not exist; False if none yet."""
        try:
            cursor.fd = os.open(partition_dir / segment_name(cursor.seq), os.O_RDONLY)
            return True
        except FileNotFoundError:
            pass
        later = [seq for seq in segment_seqs(partition_dir) if seq > cursor.seq]
        if not later:
            return False
        cursor.seq, cursor.offset = min(later), 0
        cursor.fd = os.open(partition_dir / segment_name(cursor.seq), os.O_RDONLY)
        return True

    async def ack(self, batch: Batch) -> None:
        """Commit the batch's per-partition positions, writing only the partitions that moved forward."""
        position = batch.position
        if not isinstance(position, Mapping):
            raise TypeError("not a batch of a file:// source")
        async with self._ack_lock:
            moved = {
                name: pos
                for name, pos in position.items()
                if name not in self._committed or pos > self._committed[name]
            }
            if not moved:
                return
            if not all(self._owns(name) for name in moved):
                raise ValueError(f"not a batch of member {self.membership.member}/{self.membership.members}")
            try:
                await asyncio.to_thread(self._write_offsets, moved)
            except OSError as exc:
                raise TransportError(f"cannot commit offsets to {self._offsets_dir}: {exc}") from exc
            self._committed = {**self._committed, **moved}

    def _write_offsets(self, moved: Mapping[str, tuple[int, int]]) -> None:
        """Replace each partition's offset file atomically (tmp, fsync, rename), then fsync the directory."""
        for name, (seq, offset) in sorted(moved.items()):
            data = json.dumps({"segment": seq, "offset": offset}).encode()
            tmp = self._offsets_dir / f".{name}.json.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, self._offset_path(name))
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
        fsync_dir(self._offsets_dir)

    async def close(self) -> None:
        """Stop reading; positions not acked are delivered again to the next source of this group."""
        self._closed = True
        await asyncio.to_thread(self._close_files)

    def _close_files(self) -> None:
        with self._io_lock:
            for cursor in self._cursors.values():
                if cursor.fd >= 0:
                    os.close(cursor.fd)
                    cursor.fd = -1


def open_file_source(url: str, group: str) -> FileLogSource:
    """Open `file://DIR[?member=I&members=N]` for reading by member I of N of consumer group `group`.

    The writer's URL parameters are ignored. Members default to 0 of 1: a single consumer reads everything.
    """
    parsed = parse_url(url)
    try:
        return FileLogSource(parsed.path, group, member=parsed.membership.member, members=parsed.membership.members)
    except OSError as exc:
        raise TransportError(f"cannot open file log {parsed.path}: {exc}") from exc
