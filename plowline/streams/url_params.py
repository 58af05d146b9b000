"""What every transport checks the same way: a stream URL's query parameters and the records handed to a sink.

A stream URL is configuration, so every problem with it is a `ConfigError` naming the parameter, the
URL and the fix, raised when the stream is opened (at start-up), never later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import parse_qs

from plowline.errors import ConfigError

__all__ = ["UrlParams", "check_records"]

_KEY = "stream url"


class UrlParams:
    """The query parameters of one stream URL: unknown names refused, numbers checked against their range.

    A parameter given twice takes its last value, as most URL parsers do.
    """

    def __init__(self, url: str, query: str, allowed: Iterable[str]) -> None:
        self.url = url
        self.values: dict[str, list[str]] = parse_qs(query, keep_blank_values=True)
        allowed = frozenset(allowed)
        unknown = set(self.values) - allowed
        if unknown:
            names, choices = ", ".join(sorted(unknown)), ", ".join(sorted(allowed))
            raise ConfigError(_KEY, f"unknown parameter(s) {names} in {url!r}", f"use only {choices}")

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def raw(self, key: str) -> str | None:
        """The text of parameter `key`, or None when it is absent."""
        given = self.values.get(key)
        return given[-1] if given else None

    def integer(self, key: str, minimum: int, maximum: int) -> int | None:
        """Parameter `key` as an integer in [minimum, maximum]; None when absent."""
        raw = self.raw(key)
        if raw is None:
            return None
        if not raw.isdigit() or not minimum <= int(raw) <= maximum:
            raise ConfigError(_KEY, f"{key}={raw!r} in {self.url!r}", f"use an integer in [{minimum}, {maximum}]")
        return int(raw)

    def integer_or(self, key: str, default: int, minimum: int, maximum: int) -> int:
        """Parameter `key` as an integer in [minimum, maximum]; `default` when absent."""
        value = self.integer(key, minimum, maximum)
        return default if value is None else value

    def seconds(self, key: str, default: float, minimum: float, maximum: float, hint: str = "") -> float:
        """Parameter `key` as a number of seconds in [minimum, maximum]; `default` when absent."""
        raw = self.raw(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not minimum <= value <= maximum:  # also False for nan
            fix = f"use seconds in [{minimum:g}, {maximum:g}]{hint}"
            raise ConfigError(_KEY, f"{key}={raw!r} in {self.url!r}", fix)
        return value


def check_records(records: Sequence[bytes], max_record_bytes: int) -> None:
    """Raise ValueError for a record no transport accepts: not bytes, empty, or over the size limit."""
    for record in records:
        if not isinstance(record, bytes | bytearray | memoryview):
            raise ValueError(f"records must be bytes, got {type(record).__name__}")
        size = len(record)
        if size == 0:
            raise ValueError("empty records are not accepted")
        if size > max_record_bytes:
            raise ValueError(f"record of {size} bytes exceeds max_record_bytes={max_record_bytes}")
