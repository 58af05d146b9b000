"""The on-disk format: record frames, partition and segment names, and reading frames back."""

from __future__ import annotations

import enum
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import structlog

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "HEADER",
    "MAX_FRAME_PAYLOAD",
    "End",
    "frame",
    "fsync_dir",
    "iter_records",
    "partition_index",
    "partition_name",
    "partitions",
    "read_frames",
    "segment_name",
    "segment_seqs",
]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_RECORD_BYTES = 1_000_000

# [u32 BE payload length][u32 BE zlib.crc32(payload)][payload]
HEADER = struct.Struct(">II")
# A length beyond this is corruption, not a record: no configuration may accept records this big.
MAX_FRAME_PAYLOAD = 1 << 30
_READ_CHUNK = 1 << 20
_PARTITION_RE = re.compile(r"^p-(\d{5,})$")
_SEGMENT_RE = re.compile(r"^(\d{20})\.seg$")

_log = structlog.get_logger(__name__)


def partition_name(index: int) -> str:
    """The directory of partition `index`: "p-00003"."""
    return f"p-{index:05d}"


def partition_index(name: str) -> int | None:
    """The index of a partition directory name ("p-00003" -> 3); None if it names no partition."""
    match = _PARTITION_RE.match(name)
    return int(match.group(1)) if match else None


def segment_name(seq: int) -> str:
    """The file name of segment `seq` within its partition."""
    return f"{seq:020d}.seg"


def frame(record: bytes) -> bytes:
    """One record as stored: header (length, CRC-32) and payload."""
    return HEADER.pack(len(record), zlib.crc32(record)) + record


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (files created, renamed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_seqs(partition: Path) -> list[int]:
    """The sequence numbers of a partition directory's segments, ascending."""
    try:
        names = os.listdir(partition)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for name in names if (m := _SEGMENT_RE.match(name)))


def partitions(root: Path) -> list[str]:
    """The partition directory names of a log, by ascending index."""
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    found = [(index, e.name) for e in entries if (index := partition_index(e.name)) is not None and e.is_dir()]
    return [name for _, name in sorted(found)]


class End(enum.Enum):
    """Why `read_frames` stopped."""

    LIMIT = "limit"  # read as many records as asked
    EOF = "eof"  # consumed everything, ending exactly on a record boundary
    INCOMPLETE = "incomplete"  # a partial record at the end: not yet written, or torn
    CORRUPT = "corrupt"  # an impossible length or a CRC mismatch


def read_frames(fd: int, offset: int, limit: int) -> tuple[list[bytes], int, End]:
    """Read up to `limit` intact records from `offset`; return them, the next offset and why it stopped."""
    records: list[bytes] = []
    buf = b""
    base = offset
    while len(records) < limit:
        pos = offset - base
        if len(buf) - pos < HEADER.size:
            buf, base, pos = os.pread(fd, _READ_CHUNK, offset), offset, 0
            if not buf:
                return records, offset, End.EOF
            if len(buf) < HEADER.size:
                return records, offset, End.INCOMPLETE
        length, crc = HEADER.unpack_from(buf, pos)
        if length == 0 or length > MAX_FRAME_PAYLOAD:
            return records, offset, End.CORRUPT
        end = pos + HEADER.size + length
        if end > len(buf):
            buf, base, pos = os.pread(fd, max(_READ_CHUNK, HEADER.size + length), offset), offset, 0
            end = HEADER.size + length
            if end > len(buf):
                return records, offset, End.INCOMPLETE
        payload = buf[pos + HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return records, offset, End.CORRUPT
        records.append(payload)
        offset += HEADER.size + length
    return records, offset, End.LIMIT


def iter_records(path: str | Path) -> Iterator[bytes]:
    """Every intact record of a log directory, partition by partition, segment by segment.

    A torn or corrupt record ends its segment (the rest of that segment is skipped, with a
    warning); reading goes on with the next segment. For tests and replay; not for live tailing.
    """
    root = Path(path)
    for partition in partitions(root):
        for seq in segment_seqs(root / partition):
            segment = root / partition / segment_name(seq)
            fd = os.open(segment, os.O_RDONLY)
            try:
                offset = 0
                while True:
                    records, offset, end = read_frames(fd, offset, 1024)
                    yield from records
                    if end is End.LIMIT:
                        continue
                    if end is not End.EOF:
                        _log.warning("torn_record_skipped", segment=str(segment), offset=offset, reason=end.value)
                    break
            finally:
                os.close(fd)
