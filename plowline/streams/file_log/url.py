"""Parsing `file://DIR?...` URLs: the writer's parameters and the reader's group membership."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from plowline.errors import ConfigError
from plowline.streams.file_log.framing import DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES, MAX_FRAME_PAYLOAD
from plowline.streams.members import MEMBER_PARAMS, Membership, parse_membership
from plowline.streams.url_params import UrlParams

__all__ = ["FileUrl", "parse_url"]


@dataclass(frozen=True, slots=True)
class FileUrl:
    """A parsed file:// URL. Sinks ignore `membership`; sources ignore the writer's parameters."""

    path: Path
    segment_bytes: int
    linger_ms: int
    max_record_bytes: int
    membership: Membership


_WRITER_PARAMS = frozenset({"segment_bytes", "linger_ms", "max_record_bytes"})
_URL_PARAMS = _WRITER_PARAMS | MEMBER_PARAMS


def parse_url(url: str) -> FileUrl:
    """Parse `file://DIR[?segment_bytes=N&linger_ms=N&max_record_bytes=N&member=I&members=N]`."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        raise ConfigError("stream url", f"{url!r} is not a file:// url", "use file:///abs/dir or file://rel/dir")
    raw_path = parts.netloc + parts.path
    if not raw_path:
        raise ConfigError("stream url", f"{url!r} names no directory", "use file:///abs/dir or file://rel/dir")
    params = UrlParams(url, parts.query, _URL_PARAMS)

    return FileUrl(
        path=Path(raw_path),
        segment_bytes=params.integer_or("segment_bytes", DEFAULT_SEGMENT_BYTES, 1, 1 << 62),
        linger_ms=params.integer_or("linger_ms", 0, 0, 60_000),
        max_record_bytes=params.integer_or("max_record_bytes", DEFAULT_MAX_RECORD_BYTES, 1, MAX_FRAME_PAYLOAD),
        membership=parse_membership(params.values, url),
    )
