"""file://DIR: an append-only segmented log on local disk, group-committed fsync, consumer offsets."""

from __future__ import annotations

import asyncio
import enum
import fcntl
import json
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import parse_qs, urlsplit

import structlog

from plowline.errors import ConfigError, TransportError
from plowline.streams.base import Batch

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "FileLogSink",
    "FileLogSource",
    "iter_records",
    "open_file_sink",
    "open_file_source",
]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 1_000_000

# [u32 BE payload length][u32 BE zlib.crc32(payload)][payload]
_HEADER = struct.Struct(">II")
# A length beyond this is corruption, not a record: no configuration may accept records this big.
_MAX_FRAME_PAYLOAD = 1 << 30
_READ_CHUNK = 1 << 20
_POLL_INTERVAL_S = 0.01
_PARTITION_RE = re.compile(r"^p-(\d{5,})$")
_SEGMENT_RE = re.compile(r"^(\d{20})\.seg$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_OFFSETS_DIR = "_offsets"
_LOCK_FILE = ".lock"

_log = structlog.get_logger(__name__)

#: Per partition ("p-00000"): (segment sequence number, byte offset of the next unread record).
Position = Mapping[str, tuple[int, int]]


def _partition_name(index: int) -> str:
    return f"p-{index:05d}"


def _segment_name(seq: int) -> str:
    return f"{seq:020d}.seg"


def _frame(record: bytes) -> bytes:
    return _HEADER.pack(len(record), zlib.crc32(record)) + record


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_seqs(partition: Path) -> list[int]:
    try:
        names = os.listdir(partition)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for name in names if (m := _SEGMENT_RE.match(name)))


def _partitions(root: Path) -> list[str]:
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), e.name) for e in entries if (m := _PARTITION_RE.match(e.name)) and e.is_dir()]
    return [name for _, name in sorted(found)]


# --- URL ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FileUrl:
    path: Path
    segment_bytes: int
    linger_ms: int
    max_record_bytes: int


_URL_PARAMS = {"segment_bytes", "linger_ms", "max_record_bytes"}


def _parse_url(url: str) -> _FileUrl:
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise ConfigError("stream url", f"{url!r} is not a file:// url", "use file:///abs/dir or file://rel/dir")
    raw_path = parts.netloc + parts.path
    if not raw_path:
        raise ConfigError("stream url", f"{url!r} names no directory", "use file:///abs/dir or file://rel/dir")
    params = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(params) - _URL_PARAMS
    if unknown:
        raise ConfigError(
            "stream url",
            f"unknown parameter(s) {', '.join(sorted(unknown))} in {url!r}",
            f"use only {', '.join(sorted(_URL_PARAMS))}",
        )

    def number(key: str, default: int, minimum: int, maximum: int) -> int:
        if key not in params:
            return default
        raw = params[key][-1]
        if not raw.isdigit() or not minimum <= int(raw) <= maximum:
            raise ConfigError("stream url", f"{key}={raw!r} in {url!r}", f"use an integer in [{minimum}, {maximum}]")
        return int(raw)

    return _FileUrl(
        path=Path(raw_path),
        segment_bytes=number("segment_bytes", DEFAULT_SEGMENT_BYTES, 1, 1 << 62),
        linger_ms=number("linger_ms", 0, 0, 60_000),
        max_record_bytes=number("max_record_bytes", DEFAULT_MAX_RECORD_BYTES, 1, _MAX_FRAME_PAYLOAD),
    )


# --- writing ------------------------------------------------------------------------------------------


class FileLogSink:
    """One writer's partition of the log: a new segment per open, group-committed fsync.

    Each open takes an exclusive `flock` on the first unlocked partition, so every process (e.g.
    each uvicorn worker) appends to its own partition and no segment ever has two writers.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        linger_ms: int = 0,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    ) -> None:
        if not 1 <= max_record_bytes <= _MAX_FRAME_PAYLOAD:
            raise ValueError(f"max_record_bytes must be in [1, {_MAX_FRAME_PAYLOAD}]")
        self.root = Path(path)
        self.segment_bytes = segment_bytes
        self.linger_s = linger_ms / 1000
        self.max_record_bytes = max_record_bytes
        self.records_written = 0
        self.bytes_written = 0
        self.fsyncs = 0
        self.last_flush_seconds = 0.0

        self._healthy = True
        self._closed = False
        self._pending: list[bytes] = []  # framed records waiting for the next flush
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        # After a failed write the segment may end in a partial record: the next write starts a new one.
        self._must_rotate = False

        self.root.mkdir(parents=True, exist_ok=True)
        self.partition, self._lock_fd = self._lock_partition()
        self.partition_dir = self.root / _partition_name(self.partition)
        self.segment_seq = -1
        self._segment_fd = -1
        self._segment_size = 0
        try:
            self._open_new_segment()
        except BaseException:
            os.close(self._lock_fd)
            raise

    def _lock_partition(self) -> tuple[int, int]:
        index = 0
        while True:
            partition_dir = self.root / _partition_name(index)
            created = not partition_dir.exists()
            partition_dir.mkdir(exist_ok=True)
            if created:
                _fsync_dir(self.root)
            fd = os.open(partition_dir / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                index += 1
                continue
            except BaseException:
                os.close(fd)
                raise
            return index, fd

    def _open_new_segment(self) -> None:
        """Start a fresh segment; never append to one a crashed writer may have left with a torn tail."""
        existing = _segment_seqs(self.partition_dir)
        seq = max([*existing, self.segment_seq]) + 1
        fd = os.open(self.partition_dir / _segment_name(seq), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _fsync_dir(self.partition_dir)
        except BaseException:
            os.close(fd)
            raise
        if self._segment_fd >= 0:
            os.close(self._segment_fd)
        self.segment_seq, self._segment_fd, self._segment_size = seq, fd, 0
        self._must_rotate = False

    def healthy(self) -> bool:
        """False after a failed write or fsync, until a later write succeeds."""
        return self._healthy and not self._closed

    async def write(self, records: Sequence[bytes]) -> None:
        """Return once every record is on disk and fsynced, together with whatever else was pending."""
        if self._closed:
            raise RuntimeError(f"file sink {self.root} is closed")
        frames = []
        for record in records:
            size = len(record)
            if size == 0:
                raise ValueError("empty records are not accepted")
            if size > self.max_record_bytes:
                raise ValueError(f"record of {size} bytes exceeds max_record_bytes={self.max_record_bytes}")
            frames.append(_frame(bytes(record)))
        if not frames:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.extend(frames)
        self._waiters.append(waiter)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop())
        await waiter

    async def _flush_loop(self) -> None:
        """The single flusher: each round writes and fsyncs everything that piled up meanwhile."""
        while self._pending:
            if self.linger_s:
                await asyncio.sleep(self.linger_s)
            frames, waiters = self._pending, self._waiters
            self._pending, self._waiters = [], []
            started = time.monotonic()
            try:
                written = await asyncio.to_thread(self._append, frames)
            except OSError as exc:
                self._healthy = False
                self._must_rotate = True
                _log.warning("file_log_write_failed", path=str(self.partition_dir), error=str(exc))
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(TransportError(f"writing {self.partition_dir} failed: {exc}"))
                continue
            except BaseException as exc:
                # Never leave a writer hanging, whatever went wrong.
                self._must_rotate = True
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(TransportError(f"writing {self.partition_dir} failed: {exc!r}"))
                raise
            self.last_flush_seconds = time.monotonic() - started
            self.records_written += len(frames)
            self.bytes_written += written
            self._healthy = True
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _append(self, frames: list[bytes]) -> int:
        """Write frames to the current segment, rotating between frames, and fsync. Runs in a thread."""
        if self._must_rotate:
            self._open_new_segment()
        written = 0
        buffer: list[bytes] = []
        buffered = 0
        for frame in frames:
            filled = self._segment_size + buffered
            if filled and filled + len(frame) > self.segment_bytes:
                if buffer:
                    written += self._write_and_sync(buffer)
                    buffer, buffered = [], 0
                self._open_new_segment()
            buffer.append(frame)
            buffered += len(frame)
        if buffer:
            written += self._write_and_sync(buffer)
        return written

    def _write_and_sync(self, frames: list[bytes]) -> int:
        data = memoryview(b"".join(frames))
        total = len(data)
        while data:
            n = os.write(self._segment_fd, data)
            self._segment_size += n
            data = data[n:]
        os.fsync(self._segment_fd)
        self.fsyncs += 1
        return total

    async def close(self) -> None:
        """Flush and fsync what is pending, then release the partition's lock."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        os.close(self._segment_fd)
        os.close(self._lock_fd)


# --- reading ------------------------------------------------------------------------------------------


class _End(enum.Enum):
    LIMIT = "limit"  # read as many records as asked
    EOF = "eof"  # consumed everything, ending exactly on a record boundary
    INCOMPLETE = "incomplete"  # a partial record at the end: not yet written, or torn
    CORRUPT = "corrupt"  # an impossible length or a CRC mismatch


def _read_frames(fd: int, offset: int, limit: int) -> tuple[list[bytes], int, _End]:
    """Read up to `limit` intact records from `offset`; return them, the next offset and why it stopped."""
    records: list[bytes] = []
    buf = b""
    base = offset
    while len(records) < limit:
        pos = offset - base
        if len(buf) - pos < _HEADER.size:
            buf, base, pos = os.pread(fd, _READ_CHUNK, offset), offset, 0
            if not buf:
                return records, offset, _End.EOF
            if len(buf) < _HEADER.size:
                return records, offset, _End.INCOMPLETE
        length, crc = _HEADER.unpack_from(buf, pos)
        if length == 0 or length > _MAX_FRAME_PAYLOAD:
            return records, offset, _End.CORRUPT
        end = pos + _HEADER.size + length
        if end > len(buf):
            buf, base, pos = os.pread(fd, max(_READ_CHUNK, _HEADER.size + length), offset), offset, 0
            end = _HEADER.size + length
            if end > len(buf):
                return records, offset, _End.INCOMPLETE
        payload = buf[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return records, offset, _End.CORRUPT
        records.append(payload)
        offset += _HEADER.size + length
    return records, offset, _End.LIMIT


def iter_records(path: str | Path) -> Iterator[bytes]:
    """Every intact record of a log directory, partition by partition, segment by segment.

    A torn or corrupt record ends its segment (the rest of that segment is skipped, with a
    warning); reading goes on with the next segment. For tests and replay; not for live tailing.
    """
    root = Path(path)
    for partition in _partitions(root):
        for seq in _segment_seqs(root / partition):
            segment = root / partition / _segment_name(seq)
            fd = os.open(segment, os.O_RDONLY)
            try:
                offset = 0
                while True:
                    records, offset, end = _read_frames(fd, offset, 1024)
                    yield from records
                    if end is _End.LIMIT:
                        continue
                    if end is not _End.EOF:
                        _log.warning("torn_record_skipped", segment=str(segment), offset=offset, reason=end.value)
                    break
            finally:
                os.close(fd)


@dataclass
class _Cursor:
    """Where one partition is being read: the segment's sequence number and the next byte offset."""

    name: str
    seq: int
    offset: int
    fd: int = -1
    warned_at: tuple[int, int] | None = None


class FileLogSource:
    """Reads every partition of a log for one consumer group; committed offsets in `_offsets/GROUP.json`."""

    def __init__(self, path: str | Path, group: str) -> None:
        if not _GROUP_RE.match(group):
            raise ConfigError(
                "consumer group", f"{group!r} is not a valid group name", "use letters, digits, '_', '.', '-'"
            )
        self.root = Path(path)
        self.group = group
        self.torn_records_skipped = 0
        self._offsets_dir = self.root / _OFFSETS_DIR
        self._offsets_path = self._offsets_dir / f"{group}.json"
        self.root.mkdir(parents=True, exist_ok=True)
        self._offsets_dir.mkdir(exist_ok=True)
        self._committed: dict[str, tuple[int, int]] = self._load_offsets()
        self._cursors: dict[str, _Cursor] = {}
        self._round_robin = 0
        self._closed = False
        self._io_lock = threading.Lock()
        self._ack_lock = asyncio.Lock()

    def _load_offsets(self) -> dict[str, tuple[int, int]]:
        try:
            data = json.loads(self._offsets_path.read_bytes())
            return {str(name): (int(seq), int(offset)) for name, (seq, offset) in data["partitions"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise TransportError(f"cannot read committed offsets {self._offsets_path}: {exc!r}") from exc

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
            for name in _partitions(self.root):
                if name not in self._cursors:
                    seq, offset = self._committed.get(name, (-1, 0))
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
            records, cursor.offset, end = _read_frames(cursor.fd, cursor.offset, limit - len(out))
            out += records
            if end is _End.LIMIT:
                break
            newer = [seq for seq in _segment_seqs(partition_dir) if seq > cursor.seq]
            if not newer:
                # The newest segment: a partial record is one still being written. So is a bad CRC,
                # until the writer moves on (skipping it now could skip acknowledged records after it).
                if end is _End.CORRUPT and cursor.warned_at != (cursor.seq, cursor.offset):
                    cursor.warned_at = (cursor.seq, cursor.offset)
                    _log.warning(
                        "file_log_corrupt_record_waiting",
                        partition=cursor.name,
                        segment=cursor.seq,
                        offset=cursor.offset,
                    )
                break
            # A newer segment exists, so this one is final: read what the writer finished meanwhile.
            records, cursor.offset, end = _read_frames(cursor.fd, cursor.offset, limit - len(out))
            out += records
            if end is _End.LIMIT:
                break
            if end is not _End.EOF:
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
            cursor.fd = os.open(partition_dir / _segment_name(cursor.seq), os.O_RDONLY)
            return True
        except FileNotFoundError:
            pass
        later = [seq for seq in _segment_seqs(partition_dir) if seq > cursor.seq]
        if not later:
            return False
        cursor.seq, cursor.offset = min(later), 0
        cursor.fd = os.open(partition_dir / _segment_name(cursor.seq), os.O_RDONLY)
        return True

    async def ack(self, batch: Batch) -> None:
        """Commit the batch's per-partition positions (never moving a partition backwards)."""
        position = batch.position
        if not isinstance(position, Mapping):
            raise TypeError("not a batch of a file:// source")
        async with self._ack_lock:
            merged = dict(self._committed)
            for name, pos in position.items():
                if name not in merged or pos > merged[name]:
                    merged[name] = pos
            if merged == self._committed:
                return
            try:
                await asyncio.to_thread(self._write_offsets, merged)
            except OSError as exc:
                raise TransportError(f"cannot commit offsets to {self._offsets_path}: {exc}") from exc
            self._committed = merged

    def _write_offsets(self, offsets: Mapping[str, tuple[int, int]]) -> None:
        data = json.dumps({"partitions": {name: list(pos) for name, pos in sorted(offsets.items())}}).encode()
        tmp = self._offsets_dir / f".{self.group}.json.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._offsets_path)
        _fsync_dir(self._offsets_dir)

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


def open_file_sink(url: str) -> FileLogSink:
    """Open `file://DIR[?segment_bytes=N&linger_ms=N&max_record_bytes=N]` for writing."""
    parsed = _parse_url(url)
    try:
        return FileLogSink(
            parsed.path,
            segment_bytes=parsed.segment_bytes,
            linger_ms=parsed.linger_ms,
            max_record_bytes=parsed.max_record_bytes,
        )
    except OSError as exc:
        raise TransportError(f"cannot open file log {parsed.path}: {exc}") from exc


def open_file_source(url: str, group: str) -> FileLogSource:
    """Open `file://DIR` for reading by consumer group `group` (the writer's URL parameters are ignored)."""
    parsed = _parse_url(url)
    try:
        return FileLogSource(parsed.path, group)
    except OSError as exc:
        raise TransportError(f"cannot open file log {parsed.path}: {exc}") from exc
