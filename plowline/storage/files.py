"""The `files` loader: enriched TSV and bad-row JSON lines, partitioned by hour, under a local directory.

Layout (Hive-style, so DuckDB, Spark and pandas read it directly):
`ROOT/enriched/date=YYYY-MM-DD/hour=HH/part-<writer>.tsv` by the event's collector_tstamp, and
`ROOT/bad/date=YYYY-MM-DD/hour=HH/part-<writer>.json` by the time the bad row was loaded. Each
writer process appends to its own part files and fsyncs before a write returns.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from plowline.errors import TransportError

_COLLECTOR_TSTAMP = 3  # zero-based TSV column of collector_tstamp


class FilesLoader:
    """A Sink of enriched TSV lines (kind "enriched") or bad-row JSON lines (kind "bad")."""

    name: ClassVar[str] = "files"
    max_record_bytes: int = 10_000_000

    def __init__(self, root: Path, kind: str) -> None:
        if kind not in ("enriched", "bad"):
            raise ValueError(f"kind must be 'enriched' or 'bad', not {kind!r}")
        self.root = root / kind
        self.kind = kind
        self.suffix = ".tsv" if kind == "enriched" else ".json"
        self.writer_id = uuid.uuid4().hex[:12]
        self._healthy = True

    def _partition(self, record: bytes, now: datetime) -> str:
        if self.kind == "enriched":
            fields = record.split(b"\t", _COLLECTOR_TSTAMP + 1)
            stamp = (
                fields[_COLLECTOR_TSTAMP].decode("ascii", errors="replace") if len(fields) > _COLLECTOR_TSTAMP else ""
            )
            if len(stamp) >= 13:
                return f"date={stamp[:10]}/hour={stamp[11:13]}"
        return f"date={now:%Y-%m-%d}/hour={now:%H}"

    def _append(self, records: Sequence[bytes]) -> None:
        now = datetime.now(UTC)
        groups: dict[str, list[bytes]] = defaultdict(list)
        for record in records:
            groups[self._partition(record, now)].append(record.rstrip(b"\n") + b"\n")
        for partition, lines in groups.items():
            directory = self.root / partition
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / f"part-{self.writer_id}{self.suffix}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, b"".join(lines))
                os.fsync(fd)
            finally:
                os.close(fd)

    async def write(self, records: Sequence[bytes]) -> None:
        if not records:
            return
        try:
            await asyncio.to_thread(self._append, records)
        except OSError as exc:
            self._healthy = False
            raise TransportError(f"writing {self.root} failed: {exc}") from exc
        self._healthy = True

    def healthy(self) -> bool:
        return self._healthy

    async def close(self) -> None:
        return None
