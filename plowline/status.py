"""The live status of `plowline up`: records into each stream since it started, rates, and each consumer's backlog."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.live import Live
from rich.text import Text

from plowline.config import Settings
from plowline.observability import get_logger
from plowline.streams.file_log.stats import LogStats

log = get_logger("status")


def _local_path(url: str) -> Path | None:
    parts = urlsplit(url)
    return Path(parts.netloc + parts.path) if parts.scheme == "file" else None


@dataclass
class PipelineStatus:
    """Counts from the file logs; for other transports the broker's own tools tell more."""

    raw: LogStats | None
    enriched: LogStats | None
    bad: LogStats | None
    loaders: Sequence[str]
    _last: tuple[float, int, int] = field(default=(0.0, 0, 0))

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineStatus:
        def stats(url: str) -> LogStats | None:
            path = _local_path(url)
            return LogStats(path) if path is not None else None

        return cls(stats(settings.raw_stream_url()), stats(settings.enriched_stream_url()),
                   stats(settings.bad_stream_url()), list(settings.storage.loaders))

    def line(self) -> str:
        now = time.monotonic()
        # Records since `up` started: the logs keep all history, which is not counted (see LogStats).
        raw = _new(self.raw)
        enriched = _new(self.enriched)
        bad = _new(self.bad)
        then, raw_before, enriched_before = self._last
        elapsed = now - then if then else 0.0
        raw_rate = (raw - raw_before) / elapsed if elapsed else 0.0
        enriched_rate = (enriched - enriched_before) / elapsed if elapsed else 0.0
        self._last = (now, raw, enriched)
        parts = [
            f"raw +{raw:,} ({raw_rate:,.0f}/s)",
            f"enrich lag {self.raw.backlog('enrich'):,}" if self.raw else "",
            f"enriched +{enriched:,} ({enriched_rate:,.0f}/s)",
            f"bad +{bad:,}",
        ]
        if self.enriched:
            parts += [f"{name} lag {self.enriched.backlog(name):,}" for name in self.loaders]
        return "  ".join(part for part in parts if part)


def _new(stats: LogStats | None) -> int:
    if stats is None:
        return 0
    stats.refresh()
    return stats.new


class StatusDisplay:
    """A live line on a terminal; a structured log line every `log_every_s` otherwise."""

    def __init__(self, status: PipelineStatus, console: Console, log_every_s: float = 30.0) -> None:
        self.status = status
        self.console = console
        self.log_every_s = log_every_s
        self._live: Live | None = None
        self._last_log = 0.0
        self._last_tick = 0.0

    def __enter__(self) -> StatusDisplay:
        if self.console.is_terminal:
            self._live = Live(Text(""), console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)

    def tick(self) -> None:
        """Called often by the supervisor: counts only when a line is due (each second on a terminal,
        each `log_every_s` in the log), since counting reads the logs' new frame headers."""
        now = time.monotonic()
        if self._live is not None:
            if now - self._last_tick >= 1.0:
                self._last_tick = now
                self._live.update(Text(self.status.line()))
        elif now - self._last_log >= self.log_every_s:
            self._last_log = now
            log.info("pipeline status", status=self.status.line())
