"""Counting a file log's records and each consumer group's backlog, cheaply, for status displays.

Only frame headers are read (lengths, no CRC checks), a chunk at a time: this is for a status
line, not for data. Each record is counted once, when `refresh` first sees it, and every 1024th
record's offset is kept, so a group's backlog (records after its committed position) costs one
lookup per segment plus a count of at most 1024 frames per partition, however far behind the group
is. (Counting from the committed position instead made a status line under a backlog of a million
records cost a million reads a second, which slowed the very pipeline it was watching.) Counting
starts where the consumers are, not at the log's first record: see `LogStats`.
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from plowline.streams.file_log.framing import HEADER, partitions, segment_name, segment_seqs

_CHUNK = 1 << 20
_MARK_EVERY = 1024


def _frames(fd: int, start: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) offsets of the whole frames from `start` to `size`, reading a chunk at a time.

    Stops at a frame that is not whole yet (being written) or a zero length (preallocated space).
    """
    offset = start
    while offset + HEADER.size <= size:
        chunk = os.pread(fd, min(_CHUNK, size - offset), offset)
        position = 0
        while position + HEADER.size <= len(chunk):
            length, _ = HEADER.unpack_from(chunk, position)
            end = position + HEADER.size + length
            if length == 0 or offset + end > size:
                return
            yield offset + position, offset + end
            position = end
        if position == 0:
            return
        offset += position


@dataclass
class _Segment:
    """What has been counted of one segment: its whole frames, and every 1024th frame's offset."""

    count: int = 0
    end: int = 0  # offset after the last frame counted
    marks: list[int] = field(default_factory=list)

    def extend(self, path: Path) -> int:
        """Count the frames written since the last call; return how many."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        before = self.count
        try:
            size = os.fstat(fd).st_size
            for start, end in _frames(fd, self.end, size):
                if self.count % _MARK_EVERY == 0:
                    self.marks.append(start)
                self.count += 1
                self.end = end
        finally:
            os.close(fd)
        return self.count - before

    def frames_before(self, path: Path, offset: int) -> int:
        """How many of the counted frames start before `offset` (at most 1024 frames are read)."""
        index = bisect.bisect_right(self.marks, offset) - 1
        if index < 0:
            return 0
        counted = index * _MARK_EVERY
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # removed: everything in it was read long ago
            return self.count
        try:
            for start, _ in _frames(fd, self.marks[index], self.end):
                if start >= offset:
                    break
                counted += 1
        finally:
            os.close(fd)
        return min(counted, self.count)


@dataclass
class LogStats:
    """Record counts of one file log directory, from where its consumer groups are onward.

    The log keeps everything ever written, so counting all of it would make the first status line of
    a long-lived data directory take minutes. Counting starts, per partition, at the oldest segment
    that a consumer group (every group under `_offsets/`) has not finished: `total` is the records
    counted from there, `new` those written since the first refresh. A group whose position lies
    before that (one that never committed, such as a loader added to an old log) has the older
    segments counted the first time its backlog is asked.
    """

    root: Path
    total: int = 0
    _baseline: int | None = None
    _segments: dict[str, dict[int, _Segment]] = field(default_factory=dict)
    _start: dict[str, int] = field(default_factory=dict)  # per partition: the oldest segment counted, -1: all

    @property
    def new(self) -> int:
        """Records written since the first refresh."""
        return self.total - (self._baseline or 0)

    def refresh(self) -> int:
        """Count the records written since the last refresh; return the total counted so far."""
        if not self.root.is_dir():
            return self.total
        for name in partitions(self.root):
            indexed = self._segments.get(name)
            if indexed is None:
                indexed = self._segments[name] = {}
                self._start[name] = min((self._committed(group, name)[0] for group in self._groups()), default=-1)
            start = max(self._start[name], max(indexed, default=-1))
            for seq in segment_seqs(self.root / name):
                if seq < start:
                    continue  # before the consumers, or complete: a writer appends to its newest segment only
                segment = indexed.setdefault(seq, _Segment())
                self.total += segment.extend(self.root / name / segment_name(seq))
        if self._baseline is None:
            self._baseline = self.total
        return self.total

    def backlog(self, group: str) -> int:
        """Records the group has not committed yet."""
        self.refresh()
        waiting = 0
        for name, indexed in self._segments.items():
            seq, offset = self._committed(group, name)
            if seq < self._start[name]:
                self._count_back(name, seq)
            for current, segment in indexed.items():
                if current > seq:
                    waiting += segment.count
                elif current == seq:
                    path = self.root / name / segment_name(current)
                    waiting += segment.count - segment.frames_before(path, offset)
        return waiting

    def _count_back(self, name: str, seq: int) -> None:
        """Count the (complete) segments from `seq` (-1: the first) up to where counting started."""
        indexed, start = self._segments[name], self._start[name]
        for older in segment_seqs(self.root / name):
            if older >= start:
                break
            if older >= seq:
                indexed.setdefault(older, _Segment()).extend(self.root / name / segment_name(older))
        self._start[name] = seq

    def _groups(self) -> list[str]:
        try:
            return [entry.name for entry in os.scandir(self.root / "_offsets") if entry.is_dir()]
        except FileNotFoundError:
            return []

    def _committed(self, group: str, partition: str) -> tuple[int, int]:
        """The group's committed (segment, offset) in a partition; (-1, 0) when it has none."""
        try:
            data = json.loads((self.root / "_offsets" / group / f"{partition}.json").read_bytes())
            return int(data["segment"]), int(data["offset"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return -1, 0
