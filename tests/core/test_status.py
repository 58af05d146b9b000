"""`plowline up`'s status: counts the logs only when a line is due, and its counts are the logs' own."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from plowline import status as status_module
from plowline.config import Settings
from plowline.status import PipelineStatus, StatusDisplay
from plowline.streams.file_log import open_file_sink


class CountingStatus:
    def __init__(self) -> None:
        self.lines = 0

    def line(self) -> str:
        self.lines += 1
        return f"line {self.lines}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_it_counts_only_when_it_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, logged = Clock(), []
    monkeypatch.setattr(status_module.time, "monotonic", clock)
    monkeypatch.setattr(status_module.log, "info", lambda event, **fields: logged.append(fields["status"]))
    status = CountingStatus()
    display = StatusDisplay(status, Console(file=io.StringIO()), log_every_s=30)  # type: ignore[arg-type]
    with display:
        for _ in range(200):  # the supervisor ticks every ~0.2 s
            display.tick()
            clock.now += 0.2
    assert logged == ["line 1", "line 2"] and status.lines == 2  # at 0 s and at 30 s, nothing in between


async def test_the_line_counts_records_since_start_and_lags(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    sink = open_file_sink(settings.raw_stream_url())
    await sink.write([b"one", b"two", b"three"])  # history from before this `up`
    status = PipelineStatus.from_settings(settings)
    line = status.line()
    assert "raw +0 " in line and "enrich lag 3" in line and "enriched +0 " in line, line
    assert all(f"{name} lag 0" in line for name in settings.storage.loaders), line
    await sink.write([b"four", b"five"])
    await sink.close()
    line = status.line()
    assert "raw +2 " in line and "enrich lag 5" in line, line
