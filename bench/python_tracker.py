#!/usr/bin/env python3
"""Benchmark: events/s that a Python tracker sends to a real local `plowline collector` (sync emitter, POST).

Plowline's own tracker (`plowline.trackers.python`, `Emitter`, in-memory buffer, sending inline on the tracking
thread; and again with the on-disk `SqliteBuffer`, one committed transaction per event) and PyPI's official `snowplow-tracker` (`Emitter`, method post, sending inline too) track the same mix
in the same run: a third each of page views, structured events and self-describing events, every event with one
entity, base64 encoding on (both trackers' default), batches of --batch-size events per POST. Timed from the
first `track()` to the return of the blocking `flush()` (every request answered). The collector (`plowline
collector --workers 1`, file log, fsync per group commit) runs in its own process on a free loopback port;
the trackers alternate over --rounds rounds on a fresh collector each, and the median is reported.

Also reported: the CPU time the tracker's own process used per event (encoding, HTTP client), since the
collector shares the machine. The official tracker configures logging on import and logs each request at INFO;
its loggers are set to WARNING here so that sending, not printing, is compared.

Checks (exit 1 on failure): each tracker reports every event acknowledged (ours: `acknowledged`; official:
`on_success` without `on_failure`), and the collector's raw log holds exactly that many events.

    .venv/bin/python bench/python_tracker.py [--events 20000] [--batch-size 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from benchlib import machine_facts

from plowline.payload import CollectorPayload
from plowline.streams.file_log import iter_records

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EVENT_SCHEMA = "iglu:com.acme/bench_event/jsonschema/1-0-0"
CONTEXT_SCHEMA = "iglu:com.acme/bench_context/jsonschema/1-0-0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collector:
    """`plowline collector` in its own session on a free port and a temporary data dir."""

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="plowline-bench-tracker-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLOWLINE_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plowline", "collector", "--data-dir", str(self.data_dir), "--port", str(self.port),
             "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"collector exited with {self.process.returncode}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("collector did not become healthy")

    def raw_events(self) -> int:
        raw = self.data_dir / "streams" / "raw"
        total = 0
        for record in iter_records(raw):
            payload = CollectorPayload.from_thrift(record)
            total += len(json.loads(payload.body)["data"]) if payload.body else 1
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def run_plowline(url: str, events: int, batch_size: int, on_disk: bool = False) -> tuple[float, float, int]:
    from plowline.trackers.python import (
        Emitter,
        EventBuffer,
        MemoryBuffer,
        PageView,
        SelfDescribing,
        SelfDescribingJson,
        SqliteBuffer,
        StructuredEvent,
        Tracker,
    )

    directory = Path(tempfile.mkdtemp(prefix="plowline-bench-buffer-"))
    buffer: EventBuffer = SqliteBuffer(directory / "events.db", events + 1) if on_disk else MemoryBuffer(events + 1)
    emitter = Emitter(url, batch_size=batch_size, max_batch_bytes=10_000_000, buffer=buffer)
    tracker = Tracker(emitter, namespace="bench", app_id="bench")
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(events):
        context = [SelfDescribingJson(CONTEXT_SCHEMA, {"index": i})]
        kind = i % 3
        if kind == 0:
            tracker.track(PageView(page_url=f"https://shop.example/p/{i}", page_title="Page", context=context))
        elif kind == 1:
            tracker.track(StructuredEvent(category="bench", action="click", label="l", value=i, context=context))
        else:
            tracker.track(SelfDescribing(event=SelfDescribingJson(EVENT_SCHEMA, {"index": i}), context=context))
    delivered = emitter.flush(timeout=600)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    emitter.close(timeout=10)
    shutil.rmtree(directory, ignore_errors=True)
    return elapsed, cpu, emitter.acknowledged if delivered else -emitter.pending


def run_official(url: str, events: int, batch_size: int) -> tuple[float, float, int]:
    import logging

    import requests
    from snowplow_tracker import Emitter, PageView, SelfDescribing, SelfDescribingJson, StructuredEvent, Tracker

    # It configures logging on import and logs every request at INFO: silenced, so that sending is compared.
    for name in ("snowplow_tracker.emitters", "snowplow_tracker.snowplow"):
        logging.getLogger(name).setLevel(logging.WARNING)

    acknowledged = 0
    failures: list[Any] = []

    def on_success(sent: list[dict[str, Any]]) -> None:
        nonlocal acknowledged
        acknowledged += len(sent)

    session = requests.Session()
    emitter = Emitter(url, method="post", batch_size=batch_size, byte_limit=None, on_success=on_success,
                      on_failure=lambda ok, failed: failures.append(len(failed)), request_timeout=30,
                      buffer_capacity=events + 1, session=session)
    tracker = Tracker("bench", emitter, app_id="bench")
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(events):
        context = [SelfDescribingJson(CONTEXT_SCHEMA, {"index": i})]
        kind = i % 3
        if kind == 0:
            tracker.track(PageView(page_url=f"https://shop.example/p/{i}", page_title="Page", context=context))
        elif kind == 1:
            tracker.track(StructuredEvent(category="bench", action="click", label="l", value=i, context=context))
        else:
            tracker.track(SelfDescribing(SelfDescribingJson(EVENT_SCHEMA, {"index": i}), context=context))
    tracker.flush()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    session.close()
    return elapsed, cpu, acknowledged if not failures else -sum(failures)


TRACKERS: dict[str, Callable[[str, int, int], tuple[float, float, int]]] = {
    "plowline.trackers.python": run_plowline,
    "plowline.trackers.python, SqliteBuffer": lambda url, events, size: run_plowline(url, events, size, on_disk=True),
    "snowplow-tracker (PyPI)": run_official,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import snowplow_tracker

    facts = machine_facts()
    seconds: dict[str, list[float]] = {name: [] for name in TRACKERS}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in TRACKERS}
    problems: list[str] = []
    for round_number in range(args.rounds):
        names = list(TRACKERS) if round_number % 2 == 0 else list(reversed(TRACKERS))
        for name in names:
            collector = Collector()
            try:
                elapsed, cpu, acknowledged = TRACKERS[name](collector.url, args.events, args.batch_size)
                stored = collector.raw_events()
            finally:
                collector.stop()
            seconds[name].append(elapsed)
            cpu_seconds[name].append(cpu)
            if acknowledged != args.events:
                problems.append(f"{name} round {round_number}: {acknowledged} of {args.events} acknowledged")
            if stored != args.events:
                problems.append(f"{name} round {round_number}: raw log holds {stored} events, expected {args.events}")

    print(f"events: {args.events:,} per run (pv/se/ue thirds, one entity each), POST batches of {args.batch_size}, "
          f"collector --workers 1 on loopback, median of {args.rounds} rounds; "
          f"{facts['nproc']} cores ({facts['cpu_model']}), snowplow-tracker {snowplow_tracker.__version__}")
    print("| tracker | events/s | rounds | tracker CPU per event |")
    print("|---|---|---|---|")
    figures: dict[str, dict[str, float]] = {}
    for name, runs in seconds.items():
        rate = args.events / statistics.median(runs)
        cpu_us = statistics.median(cpu_seconds[name]) / args.events * 1e6
        figures[name] = {"events_per_s": rate, "tracker_cpu_us_per_event": cpu_us}
        print(f"| {name} | **{rate:,.0f}** | {', '.join(f'{args.events / s:,.0f}' for s in runs)} | {cpu_us:.0f} µs |")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"python_tracker-{stamp}.json").write_text(json.dumps({
        "date_utc": stamp, "events": args.events, "batch_size": args.batch_size, "rounds": args.rounds,
        "machine": facts, "figures": figures, "problems": problems,
    }, indent=2))
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
