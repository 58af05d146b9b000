"""Writing: FileLogSink appends to its own locked partition, one group-committed fsync per flush."""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from plowline.errors import TransportError
from plowline.streams.file_log.framing import (
    DEFAULT_MAX_RECORD_BYTES,
    DEFAULT_SEGMENT_BYTES,
    MAX_FRAME_PAYLOAD,
    frame,
    fsync_dir,
    partition_name,
    segment_name,
    segment_seqs,
)
from plowline.streams.file_log.url import parse_url

__all__ = ["FileLogSink", "open_file_sink"]

_LOCK_FILE = ".lock"

_log = structlog.get_logger(__name__)


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
        if not 1 <= max_record_bytes <= MAX_FRAME_PAYLOAD:
            raise ValueError(f"max_record_bytes must be in [1, {MAX_FRAME_PAYLOAD}]")
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
        self.partition_dir = self.root / partition_name(self.partition)
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
            partition_dir = self.root / partition_name(index)
            created = not partition_dir.exists()
            partition_dir.mkdir(exist_ok=True)
            if created:
                fsync_dir(self.root)
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
        existing = segment_seqs(self.partition_dir)
        seq = max([*existing, self.segment_seq]) + 1
        fd = os.open(self.partition_dir / segment_name(seq), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            fsync_dir(self.partition_dir)
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
            frames.append(frame(bytes(record)))
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
        for framed in frames:
            filled = self._segment_size + buffered
            if filled and filled + len(framed) > self.segment_bytes:
                if buffer:
                    written += self._write_and_sync(buffer)
                    buffer, buffered = [], 0
                self._open_new_segment()
            buffer.append(framed)
            buffered += len(framed)
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


def open_file_sink(url: str) -> FileLogSink:
    """Open `file://DIR[?segment_bytes=N&linger_ms=N&max_record_bytes=N]` for writing."""
    parsed = parse_url(url)
    try:
        return FileLogSink(
            parsed.path,
            segment_bytes=parsed.segment_bytes,
            linger_ms=parsed.linger_ms,
            max_record_bytes=parsed.max_record_bytes,
        )
    except OSError as exc:
        raise TransportError(f"cannot open file log {parsed.path}: {exc}") from exc
