"""Benchmarks of `plowline up`: the pipeline as a child process, requests with known event ids, a paced load generator.

Shared by bench/up_latency.py and bench/up_sustained.py (imported as a sibling module):

* `UpProcess` starts `plowline up` (collector, enrich workers, loaders) in its own session on a
  temporary data dir and a free port, quiet (log level warning, output in a log file), and stops it
  with SIGTERM to the supervisor, which stops its children in pipeline order; anything of the
  session still alive after that is killed by pid. Its children run in process groups of their own
  (plowline/supervisor.py), so the session, not the process group, is what holds them all.
* `RequestFactory` builds tp2 POST requests as a browser running the JavaScript tracker sends them
  (the event mix and headers of bench/collector_vs_nginx.py), from a few hundred pre-built
  templates in which only the event ids change: each event's `eid` is a UUID made of a per-run
  prefix and a counter, so an event found in the warehouse maps back to the request that carried it.
* `drive` sends those requests at a fixed rate over keep-alive connections (asyncio on uvloop, raw
  HTTP/1.1): send i is due at t0 + i/rate, whenever the previous answer on a connection has come
  back; the schedule does not move when the server is slow (a send that starts more than
  `LATE_S` after its slot is counted late), so latency is measured from the slot, with no
  coordinated omission.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector_vs_nginx import TP2_PATH, browser_headers, new_visitor, tp2_event

from plowline.config import CONFIG_FILE_ENV, EFFECTIVE_SETTINGS_ENV, Settings, load_config

CLK_TCK = os.sysconf("SC_CLK_TCK")
IGLU_CENTRAL = Path("/work/shared/iglu-central")  # Iglu Central's schemas on disk: the link_click events resolve offline
#: A resolver config naming no HTTP repository: only the embedded schemas and the --iglu directories are asked.
OFFLINE_RESOLVER = {
    "schema": "iglu:com.snowplowanalytics.iglu/resolver-config/jsonschema/1-0-3",
    "data": {"cacheSize": 500, "cacheTtl": 600, "repositories": []},
}
#: The JavaScript tracker's event mix in one page's batch (bench/collector_vs_nginx.py's POST).
KINDS = ("pv", "pp", "pp", "pp", "ue", "pp", "pp", "se", "ue", "pp")
LATE_S = 0.05
_EID_MARK = "@@EID@@"


# --- statistics -----------------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile (pct in 0..100) of `values`: a value that occurred, never interpolated."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0.0 with fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def robust_slope(points: Sequence[tuple[float, float]], max_points: int = 600) -> float:
    """Theil-Sen slope of y over x: the median of the slopes between every two points (0.0 with
    fewer than two distinct x). One spike that drains again barely moves it, where it tilts a
    least-squares line; a backlog that keeps growing still gives its rate. Above `max_points`
    points, evenly spaced ones are used (the pairs grow as the square)."""
    if len(points) > max_points:
        step = len(points) / max_points
        points = [points[int(i * step)] for i in range(max_points)]
    slopes = [
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if x2 != x1
    ]
    return statistics.median(slopes) if slopes else 0.0


# --- processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_members(sid: int) -> dict[int, str]:
    """Live (not zombie) processes of a session: pid → command line."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[3]) != sid:  # state, session id
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found[int(entry)] = cmdline.strip()
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (all its threads) so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def role(cmdline: str) -> str:
    """Which part of the pipeline a `plowline up` process is: collector, enrich, load, models or supervisor."""
    words = cmdline.split()
    for name in ("collector", "enrich", "load", "models"):
        if name in words:
            return name
    if "up" in words:
        return "supervisor"
    return "collector"  # uvicorn's worker processes (multiprocessing spawn) serve the collector


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores, from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = f[3] + f[4]
    return (sum(f) - idle) / CLK_TCK, sum(f) / CLK_TCK


@dataclass
class CpuMeter:
    """CPU used between `start()` and `stop()`, in % of one core: by each role of `up`, by this process, by the machine."""

    up: UpProcess
    _start: dict[int, float] = field(default_factory=dict)
    _roles: dict[int, str] = field(default_factory=dict)
    _self: float = 0.0
    _machine: tuple[float, float] = (0.0, 0.0)
    _wall: float = 0.0

    def start(self) -> None:
        members = self.up.members()
        self._roles = {pid: role(cmd) for pid, cmd in members.items()}
        self._start = {pid: cpu_seconds(pid) for pid in members}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._self = usage.ru_utime + usage.ru_stime
        self._machine = machine_cpu()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        by_role: dict[str, float] = {}
        for pid, cmd in self.up.members().items():
            name = self._roles.get(pid) or role(cmd)
            by_role[name] = by_role.get(name, 0.0) + cpu_seconds(pid) - self._start.get(pid, 0.0)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy, total = machine_cpu()
        cores = os.cpu_count() or 1
        machine_busy = 100 * cores * (busy - self._machine[0]) / max(total - self._machine[1], 1e-9)
        result = {f"{name}_pct": round(100 * seconds / wall, 1) for name, seconds in sorted(by_role.items())}
        result["up_total_pct"] = round(100 * sum(by_role.values()) / wall, 1)
        result["bench_process_pct"] = round(100 * (usage.ru_utime + usage.ru_stime - self._self) / wall, 1)
        result["machine_busy_pct"] = round(machine_busy, 1)
        result["others_pct"] = round(machine_busy - result["up_total_pct"] - result["bench_process_pct"], 1)
        return result


@dataclass
class UpProcess:
    """`plowline up` on a temporary data dir and a free port, quiet; `stop()` leaves no process behind."""

    workers: int = 1
    enrich_workers: int | None = None
    loaders: Sequence[str] | None = None  # None: the default (storage.loaders)
    iglu: Path = IGLU_CENTRAL
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="plowline-bench-up-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "up.log"

    def settings(self) -> Settings:
        """The settings `up` runs with, as far as the benchmark needs them (paths of streams and warehouse)."""
        overrides: dict[str, Any] = {"data_dir": str(self.data_dir)}
        if self.loaders is not None:
            overrides["storage"] = {"loaders": list(self.loaders)}
        return load_config(None, overrides)

    def argv(self) -> list[str]:
        resolver = self.root / "resolver.json"
        resolver.write_text(json.dumps(OFFLINE_RESOLVER))
        argv = [sys.executable, "-m", "plowline", "up", "--data-dir", str(self.data_dir), "--port", str(self.port),
                "--workers", str(self.workers), "--resolver", str(resolver), "--iglu", str(self.iglu)]
        if self.enrich_workers is not None:
            argv += ["--enrich-workers", str(self.enrich_workers)]
        return argv

    def start(self, timeout_s: float = 60.0) -> UpProcess:
        if not (self.iglu / "schemas").is_dir():
            raise SystemExit(f"{self.iglu} has no schemas/ directory: give --iglu with a copy of Iglu Central")
        env = {key: value for key, value in os.environ.items() if key not in (CONFIG_FILE_ENV, EFFECTIVE_SETTINGS_ENV)}
        env["PLOWLINE_LOG_LEVEL"] = "warning"
        if self.loaders is not None:
            env["PLOWLINE_STORAGE__LOADERS"] = json.dumps(list(self.loaders))
        with self.log_path.open("ab") as log:
            # cwd: the temporary directory, which has no plowline.toml, so only the flags configure it.
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.root, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"plowline up exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._healthy() and self._warehouse_answers():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"plowline up did not become ready within {timeout_s:g} s:\n{self.log_tail()}")

    def _healthy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def _warehouse_answers(self) -> bool:
        """The duckdb loader is up and answers queries on its socket (or duckdb is not a loader)."""
        from plowline.analytics.query import QueryError, query_socket_path, warehouse_path

        settings = self.settings()
        if "duckdb" not in settings.storage.loaders:
            return True
        if not query_socket_path(warehouse_path(settings)).exists():
            return False
        try:
            query(settings, "SELECT count(*) FROM atomic.events")
        except QueryError:
            return False
        return True

    def members(self) -> dict[int, str]:
        return session_members(self.process.pid) if self.process is not None else {}

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM the supervisor (it stops collector, enrich, loaders in order); kill by pid whatever is left."""
        if self.process is None:
            return None
        code: int | None = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        else:
            code = self.process.returncode
        deadline = time.monotonic() + 10
        while (left := self.members()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return code


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    """Rows of one read-only query on the warehouse (the duckdb loader's socket while `up` runs)."""
    from plowline.analytics.query import run_query

    return run_query(settings, sql, wait_s=10.0, timeout_s=60.0)[1]


# --- requests -------------------------------------------------------------------------------------------


class RequestFactory:
    """tp2 POST requests of `events_per_request` JS-tracker events each, with counter-numbered event ids.

    Event n's eid is `<prefix><n as 12 hex digits>`; the prefix (random per factory, UUID v4 shaped)
    keeps runs apart. Request k carries events k*E .. k*E+E-1. All events have app_id `app_id`.
    """

    def __init__(self, events_per_request: int, app_id: str, *, templates: int = 256, seed: int = 1) -> None:
        if events_per_request < 1:
            raise ValueError("events_per_request must be at least 1")
        self.events_per_request = events_per_request
        self.app_id = app_id
        self.prefix = str(uuid.uuid4())[:24]
        self.sent_requests = 0
        rng = random.Random(seed)
        now_ms = int(time.time() * 1000)
        self._templates = [self._template(rng, now_ms, k) for k in range(templates)]

    def _template(self, rng: random.Random, now_ms: int, k: int) -> tuple[bytes, list[bytes]]:
        visitor = new_visitor(rng)
        events = []
        for i in range(self.events_per_request):
            kind = KINDS[(k * self.events_per_request + i) % len(KINDS)]
            event = tp2_event(kind, visitor, rng, now_ms + i * 10_000, "compact")
            event["eid"] = _EID_MARK
            event["aid"] = self.app_id
            events.append(event)
        body = json.dumps(
            {"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": events},
            separators=(",", ":"), ensure_ascii=False,
        ).encode("utf-8")
        parts = body.split(_EID_MARK.encode())
        length = sum(map(len, parts)) + 36 * self.events_per_request
        headers = browser_headers(visitor, image=False)
        headers.insert(2, ("Content-Length", str(length)))
        headers.insert(4, ("Content-Type", "application/json; charset=UTF-8"))
        head = f"POST {TP2_PATH} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        return head.encode("utf-8"), parts

    def eid(self, n: int) -> str:
        return f"{self.prefix}{n:012x}"

    def counter(self, eid: str) -> int | None:
        """The event number of an eid this factory made, or None."""
        return int(eid[24:], 16) if eid.startswith(self.prefix) and len(eid) == 36 else None

    def request(self, k: int) -> bytes:
        """Request number k (its events are k*E .. k*E+E-1)."""
        head, parts = self._templates[k % len(self._templates)]
        first = k * self.events_per_request
        pieces = [head, parts[0]]
        for i, part in enumerate(parts[1:]):
            pieces.append(f"{self.prefix}{first + i:012x}".encode())
            pieces.append(part)
        return b"".join(pieces)


# --- the load generator ---------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one `drive` run did. Latencies are from each send's slot in the schedule to its answer's last byte."""

    rate_rps: float
    duration_s: float
    sent: int = 0
    ok: int = 0
    failed: int = 0
    late: int = 0
    max_lag_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = self.latencies_s
        return {
            "rate_rps": self.rate_rps, "duration_s": self.duration_s, "sent": self.sent, "ok": self.ok,
            "failed": self.failed, "late_sends": self.late, "max_send_lag_ms": round(1000 * self.max_lag_s, 1),
            "achieved_rps": round(self.ok / self.wall_s, 1) if self.wall_s else 0.0,
            "http_p50_ms": round(1000 * percentile(lat, 50), 2) if lat else None,
            "http_p99_ms": round(1000 * percentile(lat, 99), 2) if lat else None,
            "http_max_ms": round(1000 * max(lat), 2) if lat else None,
            "errors": self.errors,
        }


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, keep-alive) of one HTTP/1.1 response; its body is read and dropped."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif name == b"transfer-encoding":
            raise ValueError("chunked responses are not expected from the collector")
    if length:
        await reader.readexactly(length)
    return status, keep_alive


async def drive(
    port: int,
    factory: RequestFactory,
    rate_rps: float,
    duration_s: float,
    *,
    connections: int = 64,
    on_ok: Callable[[int, float], None] = lambda k, t: None,
    first_request: int = 0,
) -> LoadResult:
    """Send requests first_request, first_request+1, … at `rate_rps` for `duration_s`; `on_ok(k, time.time())` per 200."""
    result = LoadResult(rate_rps, duration_s)
    interval = 1.0 / rate_rps
    total = int(rate_rps * duration_s)
    next_slot = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.2

    async def connection() -> None:
        nonlocal next_slot
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            while next_slot < total:
                slot = next_slot
                next_slot += 1
                due = t0 + slot * interval
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif -delay > LATE_S:
                    result.late += 1
                    result.max_lag_s = max(result.max_lag_s, -delay)
                k = first_request + slot
                data = factory.request(k)
                result.sent += 1
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    assert reader is not None
                    writer.write(data)
                    status, keep_alive = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    result.failed += 1
                    name = type(exc).__name__
                    result.errors[name] = result.errors.get(name, 0) + 1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                    continue
                done = loop.time()
                if status == 200:
                    result.ok += 1
                    result.latencies_s.append(done - due)
                    on_ok(k, time.time())
                else:
                    result.failed += 1
                    result.errors[f"HTTP {status}"] = result.errors.get(f"HTTP {status}", 0) + 1
                if not keep_alive:
                    assert writer is not None
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    result.wall_s = time.monotonic() - started - 0.2
    return result


def use_uvloop() -> None:
    """uvloop when installed (it is a dependency of the collector): a cheaper client."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
