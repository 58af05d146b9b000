"""file://DIR: an append-only segmented log on local disk, group-committed fsync, consumer offsets."""

from __future__ import annotations

from plowline.streams.file_log.framing import DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES, iter_records
from plowline.streams.file_log.reader import FileLogSource, Position, open_file_source
from plowline.streams.file_log.writer import FileLogSink, open_file_sink

__all__ = [
    "DEFAULT_MAX_RECORD_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "FileLogSink",
    "FileLogSource",
    "Position",
    "iter_records",
    "open_file_sink",
    "open_file_source",
]
