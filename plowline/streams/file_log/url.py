"""Parsing `file://DIR?...` URLs: the writer's parameters and the reader's group membership."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from plowline.errors import ConfigError
from plowline.streams.file_log.framing import DEFAULT_MAX_RECORD_BYTES, DEFAULT_SEGMENT_BYTES, MAX_FRAME_PAYLOAD
from plowline.streams.members import MEMBER_PARAMS, Membership, parse_membership

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

    return FileUrl(
        path=Path(raw_path),
        segment_bytes=number("segment_bytes", DEFAULT_SEGMENT_BYTES, 1, 1 << 62),
        linger_ms=number("linger_ms", 0, 0, 60_000),
        max_record_bytes=number("max_record_bytes", DEFAULT_MAX_RECORD_BYTES, 1, MAX_FRAME_PAYLOAD),
        membership=parse_membership(params, url),
    )
