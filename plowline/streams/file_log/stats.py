"""Counting a file log's records and each consumer group's backlog, cheaply, for status displays.

Only frame headers are read (lengths, no CRC checks): this is for a status line, not for data.
Totals are counted incrementally from where the last count stopped; a group's backlog is counted
from its committed position, so the cost follows the backlog, bounded by `limit`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from plowline.streams.file_log.framing import HEADER, partitions, segment_name, segment_seqs

_CHUNK = 1 << 20


def _count_frames(path: Path, offset: int, limit: int) -> tuple[int, int]:
    """Whole frames in a segment from `offset`: (count, offset after the last whole frame)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0, offset
    count = 0
    try:
        size = os.fstat(fd).st_size
        while count < limit and offset + HEADER.size <= size:
            header = os.pread(fd, HEADER.size, offset)
            if len(header) < HEADER.size:
                break
            length, _ = HEADER.unpack(header)
            end = offset + HEADER.size + length
            if length == 0 or end > size:
                break
            offset = end
            count += 1
    finally:
        os.close(fd)
    return count, offset


def _count_from(partition_dir: Path, seq: int, offset: int, limit: int) -> tuple[int, int, int]:
    """Frames from (seq, offset) to the end of the partition: (count, last seq, its offset)."""
    total = 0
    for current in [s for s in segment_seqs(partition_dir) if s >= seq]:
        start = offset if current == seq else 0
        count, end = _count_frames(partition_dir / segment_name(current), start, limit - total)
        total += count
        seq, offset = current, end
        if total >= limit:
            break
    return total, seq, offset


@dataclass
class LogStats:
    """Incremental record counts of one file log directory."""

    root: Path
    total: int = 0
    _positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def refresh(self) -> int:
        """Count the records written since the last refresh; return the total so far."""
        if not self.root.is_dir():
            return self.total
        for name in partitions(self.root):
            seq, offset = self._positions.get(name, (-1, 0))
            count, seq, offset = _count_from(self.root / name, seq, offset, 1 << 62)
            self.total += count
            self._positions[name] = (seq, offset)
        return self.total

    def backlog(self, group: str, limit: int = 1_000_000) -> int:
        """Records the group has not committed yet (at most `limit`: counting stops there)."""
        if not self.root.is_dir():
            return 0
        waiting = 0
        for name in partitions(self.root):
            seq, offset = -1, 0
            committed = self.root / "_offsets" / group / f"{name}.json"
            try:
                data = json.loads(committed.read_bytes())
                seq, offset = int(data["segment"]), int(data["offset"])
            except (FileNotFoundError, ValueError, KeyError, TypeError):
                pass
            count, _, _ = _count_from(self.root / name, seq, offset, limit - waiting)
            waiting += count
            if waiting >= limit:
                break
        return waiting
