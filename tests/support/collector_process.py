"""A real collector in a child process, on a free loopback port and a temporary data dir."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from plowline.payload import CollectorPayload
from plowline.streams.file_log import iter_records
from plowline.streams.file_log.framing import partitions


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class CollectorProcess:
    """`plowline collector` started as users start it; `records()` reads back what it stored."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    workers: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "streams" / "raw"

    @property
    def bad_dir(self) -> Path:
        return self.data_dir / "streams" / "bad"

    def start(self, timeout_s: float = 30.0) -> CollectorProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"collector-{self.port}-{time.monotonic_ns()}.log"
        environment = {**os.environ, **self.env}
        environment.pop("PLOWLINE_CONFIG", None)
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plowline", "collector", "--data-dir", str(self.data_dir),
             "--port", str(self.port), "--workers", str(self.workers)],
            stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"collector did not become healthy:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> None:
        """Stop the whole process group (server and workers); SIGKILL for crash tests."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout_s)
        if sig == signal.SIGKILL:
            # Workers are in the same group; make sure none outlives the kill.
            time.sleep(0.2)

    def partitions(self) -> list[str]:
        """The raw log's partition directories: one per worker that has started."""
        return partitions(self.raw_dir) if self.raw_dir.exists() else []

    def records(self) -> list[CollectorPayload]:
        if not self.raw_dir.exists():
            return []
        return [CollectorPayload.from_thrift(record) for record in iter_records(self.raw_dir)]

    def bad_rows(self) -> list[bytes]:
        if not self.bad_dir.exists():
            return []
        return list(iter_records(self.bad_dir))

    def wait_for_records(self, count: int, timeout_s: float = 20.0) -> list[CollectorPayload]:
        """Records appear as soon as the collector answers, but trackers send asynchronously."""
        deadline = time.monotonic() + timeout_s
        records = self.records()
        while len(records) < count and time.monotonic() < deadline:
            time.sleep(0.1)
            records = self.records()
        return records
