#!/usr/bin/env python3
"""Collector benchmark: Plowline's durable requests/s and latency, side by side with nginx-light.

    .venv/bin/python bench/collector_vs_nginx.py            # the whole run, about 3-4 minutes
    .venv/bin/python bench/collector_vs_nginx.py --help

In one run, on this machine, with the load generator (wrk) on the same cores as the server:

1. max requests/s of `plowline collector` (file:// raw stream: every answer waits for its record to
   be written and fsynced) for a GET pixel `/i?...` (~500-byte querystring, Chrome's headers) and a
   POST tp2 of 10 JS-tracker-like events (~3.8 KB body), with --workers 2 and --workers 1;
2. p50/p99 latency at half of that max rate, with a paced (open-ish loop) wrk script;
3. the same for Debian's nginx-light (worker_processes 2, access log of each request, the POST body
   logged with $request_body), and the Plowline/nginx ratios;
4. after each run, that the number of records in DATA_DIR/streams/raw (read back with
   plowline.streams.file_log.iter_records) equals the number of 2xx answers wrk counted, and for
   nginx that the access log has one line per 2xx answer.

Figures are printed as a table and written as JSON to bench/results/. Method: BENCHMARKS.md.
Needs `wrk` and `nginx-light` (apt-get install -y wrk nginx-light); installs nothing itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from benchlib import machine_facts

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LUA_SCRIPT = BENCH / "wrk" / "load.lua"
NGINX_TEMPLATE = BENCH / "nginx.conf.template"
RESULTS_DIR = BENCH / "results"
ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
TP2_PATH = "/com.snowplowanalytics.snowplow/tp2"
INSTALL_HINT = "install them with:  apt-get update && apt-get install -y wrk nginx-light"

CLK_TCK = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------------------------------------
# Requests: what a Chrome browser running Snowplow's JavaScript tracker (v3) sends.
# ---------------------------------------------------------------------------------------------

CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
SEC_CH_UA = '"Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"'
COLLECTOR_HOST = "c.shop-example.com"
SITE = "https://www.shop-example.com"
PAGES = [
    ("/products/trail-running-shoes?colour=blue&size=42", "Trail Running Shoes \u2013 Men's | Shop Example"),
    ("/category/outdoor/jackets?page=2", "Outdoor Jackets \u2013 Page 2 | Shop Example"),
    ("/cart", "Your basket (3 items) | Shop Example"),
    ("/blog/choosing-hiking-boots", "How to choose hiking boots | Shop Example"),
    ("/de/produkte/wanderschuhe-gr\u00f6\u00dfe-43", "Wanderschuhe Gr\u00f6\u00dfe 43 | Shop Example"),
    ("/search?q=waterproof+socks", "Search: \u201cwaterproof socks\u201d | Shop Example"),
]
REFERRERS = ["https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/", ""]
RESOLUTIONS = [
    ("1920x1080", "1680x939", "1665x5230"),
    ("2560x1440", "2543x1289", "2543x4120"),
    ("1366x768", "1366x657", "1351x6802"),
]
TIMEZONES = ["Europe/Berlin", "Europe/London", "America/New_York", "Asia/Tokyo"]
LANGS = [("en-US", "en-US,en;q=0.9"), ("de-DE", "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7"), ("en-GB", "en-GB,en;q=0.9")]
SAFE = "-_.!~*'()"  # what encodeURIComponent leaves as it is


@dataclass
class Visitor:
    nuid: str
    duid: str
    sid: str
    vid: int
    page: tuple[str, str]
    referrer: str
    screen: tuple[str, str, str]
    tz: str
    lang: tuple[str, str]
    page_view_id: str


def new_visitor(rng: random.Random) -> Visitor:
    return Visitor(
        nuid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        duid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        sid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        vid=rng.randint(1, 40),
        page=rng.choice(PAGES),
        referrer=rng.choice(REFERRERS),
        screen=rng.choice(RESOLUTIONS),
        tz=rng.choice(TIMEZONES),
        lang=rng.choice(LANGS),
        page_view_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    )


def common_fields(v: Visitor, rng: random.Random, now_ms: int) -> dict[str, str]:
    url = SITE + v.page[0]
    fields = {
        "tv": "js-3.24.2",
        "tna": "sp",
        "aid": "shop-web",
        "p": "web",
        "eid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "dtm": str(now_ms),
        "tz": v.tz,
        "lang": v.lang[0],
        "cs": "UTF-8",
        "res": v.screen[0],
        "cd": "24",
        "cookie": "1",
        "vp": v.screen[1],
        "ds": v.screen[2],
        "vid": str(v.vid),
        "sid": v.sid,
        "duid": v.duid,
        "url": url,
        "page": v.page[1],
    }
    if v.referrer:
        fields["refr"] = v.referrer
    return fields


def browser_headers(v: Visitor, *, image: bool) -> list[tuple[str, str]]:
    headers = [
        ("Host", COLLECTOR_HOST),
        ("Connection", "keep-alive"),
        ("sec-ch-ua", SEC_CH_UA),
        ("sec-ch-ua-mobile", "?0"),
        ("User-Agent", CHROME_UA),
        ("sec-ch-ua-platform", '"Windows"'),
    ]
    if image:
        headers += [
            ("Accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"),
            ("Sec-Fetch-Site", "same-site"),
            ("Sec-Fetch-Mode", "no-cors"),
            ("Sec-Fetch-Dest", "image"),
        ]
    else:
        headers += [
            ("Accept", "*/*"),
            ("Origin", SITE),
            ("Sec-Fetch-Site", "same-site"),
            ("Sec-Fetch-Mode", "cors"),
            ("Sec-Fetch-Dest", "empty"),
        ]
    headers += [
        ("Referer", SITE + "/"),
        ("Accept-Encoding", "gzip, deflate, br, zstd"),
        ("Accept-Language", v.lang[1]),
        ("Cookie", f"sp={v.nuid}"),
    ]
    return headers


def get_pixel_request(rng: random.Random, now_ms: int) -> bytes:
    """GET /i?e=pv&... as the JS tracker sends it with eventMethod 'get' (no base64 contexts)."""
    v = new_visitor(rng)
    params = {"e": "pv", **common_fields(v, rng, now_ms)}
    params["stm"] = str(now_ms + rng.randint(2, 40))
    query = "&".join(f"{k}={quote(val, safe=SAFE)}" for k, val in params.items())
    head = f"GET /i?{query} HTTP/1.1\r\n" + "".join(f"{k}: {val}\r\n" for k, val in browser_headers(v, image=True))
    return (head + "\r\n").encode("utf-8")


# "compact": fields left out of each event, to make the ~3-4 KB body of the issue (see post_tp2_request).
COMPACT_DROPPED = ("cs", "cd", "ds", "res", "cookie", "vp", "tz", "lang", "vid", "duid")


def tp2_event(kind: str, v: Visitor, rng: random.Random, now_ms: int, style: str) -> dict[str, str]:
    event = {"e": kind, **common_fields(v, rng, now_ms)}
    if style == "compact":
        for name in COMPACT_DROPPED:
            del event[name]
        if kind != "pv":
            event.pop("page", None)
            event.pop("refr", None)
    if kind == "pp":
        event.pop("refr", None)
        event.update(pp_mix="0", pp_max=str(rng.randint(0, 40)), pp_miy="0", pp_may=str(rng.randint(100, 4000)))
    elif kind == "ue":
        event["ue_pr"] = json.dumps(
            {
                "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
                "data": {
                    "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
                    "data": {"targetUrl": SITE + rng.choice(PAGES)[0]}
                    if style == "compact"
                    else {"targetUrl": SITE + rng.choice(PAGES)[0], "elementClasses": ["btn", "btn-primary"]},
                },
            },
            separators=(",", ":"),
        )
    elif kind == "se":
        event.update(se_ca="basket", se_ac="add", se_la=f"sku-{rng.randint(10000, 99999)}", se_va="89.95")
    event["stm"] = str(now_ms + 500)
    return event


def post_tp2_request(rng: random.Random, now_ms: int, style: str) -> bytes:
    """POST tp2 with a batch of 10 events (1 page view, 6 page pings, 2 link clicks, 1 structured).

    "full": the JS tracker v3's fields for each event, without the web_page context
    (`contexts: {webPage: false}`): ~6.2 KB. "compact" (the default, the issue's ~3-4 KB): the
    identifying fields only (e, tv, tna, aid, p, eid, dtm, stm, sid, url and the event's own
    fields), page title and referrer on the page view only, no link_click element classes: ~3.8 KB.
    """
    v = new_visitor(rng)
    kinds = ["pv", "pp", "pp", "pp", "ue", "pp", "pp", "se", "ue", "pp"]
    events = [tp2_event(kind, v, rng, now_ms + i * 10_000, style) for i, kind in enumerate(kinds)]
    body = json.dumps(
        {"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": events},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    headers = browser_headers(v, image=False)
    headers.insert(2, ("Content-Length", str(len(body))))
    headers.insert(4, ("Content-Type", "application/json; charset=UTF-8"))
    head = f"POST {TP2_PATH} HTTP/1.1\r\n" + "".join(f"{k}: {val}\r\n" for k, val in headers)
    return (head + "\r\n").encode("utf-8") + body


def write_requests(path: Path, kind: str, count: int, seed: int, style: str = "compact") -> dict[str, Any]:
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000)
    sizes: list[int] = []
    body_sizes: list[int] = []
    with path.open("wb") as out:
        for _ in range(count):
            raw = get_pixel_request(rng, now_ms) if kind == "GET" else post_tp2_request(rng, now_ms, style)
            body = raw.partition(b"\r\n\r\n")[2]
            sizes.append(len(raw))
            body_sizes.append(len(body) if kind == "POST" else len(raw.split(b" ", 2)[1].partition(b"?")[2]))
            out.write(b"%d\n" % len(raw))
            out.write(raw)
    return {
        "requests": count,
        **({"tp2_style": style, "events_per_request": 10} if kind == "POST" else {}),
        "mean_request_bytes": round(sum(sizes) / count),
        ("mean_body_bytes" if kind == "POST" else "mean_querystring_bytes"): round(sum(body_sizes) / count),
    }


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(port: int, path: str) -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            line = s.recv(64).split(b"\r\n", 1)[0].split()
            return int(line[1]) if len(line) >= 2 else None
    except OSError:
        return None


def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering; log {log}:\n{tail(log)}")
        if http_status(port, path) is not None:
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer on port {port} within {timeout_s}s; log {log}:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM the server's main process (uvicorn's supervisor / nginx's master), then wait."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session, started by us
            proc.wait()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine so far (all CPUs), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal
    return {
        "user_system": (f[0] + f[1] + f[2]) / CLK_TCK,
        "irq_softirq": (f[5] + f[6]) / CLK_TCK,
        "idle": (f[3] + f[4]) / CLK_TCK,
        "total": sum(f[:8]) / CLK_TCK,
    }


def machine_busy_pct(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Where the machine's CPU went between two samples, in % of one core."""
    cores = os.cpu_count() or 1
    span = (after["total"] - before["total"]) / cores
    return {k: round(100 * (after[k] - before[k]) / span, 1) for k in ("user_system", "irq_softirq", "idle")}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads), from /proc/PID/stat."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


@dataclass
class Server:
    name: str
    workers: int
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    count_stored: Callable[[], int] | None  # records / log lines stored so far (None: stores nothing)
    pids: list[int] = field(default_factory=list)
    command: str = ""


# What `plowline collector --data-dir D --port P --workers W` runs, for a working tree whose CLI
# has (momentarily) no `collector` command: same config loading, same server.
_SERVE_DIRECTLY = """
import sys
from pathlib import Path
from plowline.collector.server import serve
from plowline.config import load_config
from plowline.observability import configure_logging
data_dir, port, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = load_config(None, {"data_dir": data_dir, "collector": {"port": port, "workers": workers}})
configure_logging(settings.log_level, settings.log_format)
Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
serve(settings)
"""


def collector_command(data_dir: Path, port: int, workers: int) -> list[str]:
    """`python -m plowline collector ...`, or the same server started directly if the CLI lacks it."""
    probe = subprocess.run(
        [sys.executable, "-m", "plowline", "collector", "--help"], check=False, capture_output=True, cwd=REPO
    )
    if probe.returncode == 0:
        return [
            sys.executable,
            "-m",
            "plowline",
            "collector",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    print(
        "    NOTE: this working tree's CLI has no `collector` command; starting plowline.collector.server.serve "
        "directly with the same settings",
        flush=True,
    )
    return [sys.executable, "-c", _SERVE_DIRECTLY, str(data_dir), str(port), str(workers)]


def start_plowline(workers: int, data_dir: Path, log: Path) -> Server:
    port = free_port()
    cmd = collector_command(data_dir, port, workers)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_ready(port, "/health", proc, log)
    raw = data_dir / "streams" / "raw"

    def count() -> int:
        from plowline.streams.file_log import iter_records

        return sum(1 for _ in iter_records(raw)) if raw.exists() else 0

    server = Server("plowline", workers, proc, port, log, count)
    server.command = "plowline collector" if "collector" in cmd else "plowline.collector.server.serve (CLI fallback)"
    # uvicorn starts the workers after binding: wait until every worker has opened its sinks.
    deadline = time.monotonic() + 30
    while log.read_text(errors="replace").count("collector worker started") < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all {workers} workers started; log {log}:\n{tail(log)}")
        time.sleep(0.1)
    server.pids = process_tree(proc.pid)
    return server


def start_bare_asgi(workers: int, log: Path) -> Server:
    """uvicorn as the collector runs it, serving bench/bare_asgi.py's app that does nothing: the ceiling."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).with_name("bare_asgi.py")), str(port), str(workers)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_ready(port, "/health", proc, log)
    deadline = time.monotonic() + 30  # uvicorn binds, then starts its workers (and a spawn helper)
    while len(process_tree(proc.pid)) < workers + 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    server = Server("bare ASGI", workers, proc, port, log, None, command="bench/bare_asgi.py (uvicorn)")
    server.pids = process_tree(proc.pid)
    return server


def start_nginx(prefix: Path) -> Server:
    port = free_port()
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    conf = NGINX_TEMPLATE.read_text()
    for key, value in {"PREFIX": str(prefix), "PORT": str(port), "ECHO_MODULE": str(ECHO_MODULE)}.items():
        conf = conf.replace(f"@@{key}@@", value)
    (prefix / "nginx.conf").write_text(conf)
    log = prefix / "stdout.log"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_ready(port, "/", proc, prefix / "error.log")

    def count() -> int:
        total = 0
        for name in ("pixel.log", "tp2.log"):
            path = prefix / name
            if path.exists():
                with path.open("rb") as f:
                    while chunk := f.read(1 << 20):
                        total += chunk.count(b"\n")
        return total

    server = Server("nginx-light", 2, proc, port, log, count)
    time.sleep(0.3)
    server.pids = process_tree(proc.pid)
    return server


# ---------------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------------


QUIET_WAIT_S = 180.0
QUIET_PCT = 15.0  # % of one core used by other processes above which the machine is not quiet


def wait_quiet(max_wait_s: float) -> float:
    """Wait (up to max_wait_s) for a second in which processes use < QUIET_PCT of a core; return the last."""
    deadline = time.monotonic() + max_wait_s
    said = False
    while True:
        before = machine_cpu()
        time.sleep(1)
        busy = machine_busy_pct(before, machine_cpu())["user_system"]
        if busy < QUIET_PCT or time.monotonic() > deadline:
            return busy
        if not said:
            print(f"    (waiting for other processes to stop using the CPU: {busy:.0f}% of a core)", flush=True)
            said = True


def run_wrk(
    server: Server,
    requests_file: Path,
    *,
    mode: str,
    track_s: int,
    drain_s: int,
    connections: int,
    threads: int,
    rate: float = 0.0,
    quiet_wait_s: float = QUIET_WAIT_S,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "PL_REQUESTS": str(requests_file),
        "PL_MODE": mode,
        "PL_TRACK_S": str(track_s),
        "PL_THREAD_RPS": f"{rate / threads:.3f}",
    }
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{track_s + drain_s}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{server.port}/",
    ]
    background = wait_quiet(quiet_wait_s)
    count = server.count_stored or (lambda: 0)
    stored_before = count()
    # CPU is sampled over the tracking phase only (from wrk's start to PL_TRACK_S later), not the drain.
    server_cpu_before = cpu_seconds(server.pids)
    machine_before = machine_cpu()
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(max(0.0, started + track_s - time.monotonic()))
    wall = time.monotonic() - started
    server_cpu = cpu_seconds(server.pids) - server_cpu_before
    wrk_cpu = cpu_seconds([proc.pid])
    machine = machine_busy_pct(machine_before, machine_cpu())
    stdout, stderr = proc.communicate(timeout=drain_s + 120)
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("PLJSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    out: dict[str, Any] = json.loads(line[len("PLJSON ") :])
    ok = out["requests"] - out["errors"]["status"]
    stored = count() - stored_before if server.count_stored else ok  # the bare app stores nothing
    lat = out["latency_us"]
    result = {
        "mode": mode,
        "connections": connections,
        "wrk_threads": threads,
        "tracking_seconds": track_s,
        "target_rps": round(rate, 1) if mode == "paced" else None,
        "ok_2xx": ok,
        "rps": round(ok / track_s, 1),
        "issued": out["issued"],
        "errors": out["errors"],
        "drain_requests": out["drained"],
        "stored": stored,
        "stored_equals_2xx": stored == ok,
        "all_issued_answered_2xx": out["issued"] == ok,
        "latency_ms": {k: round(v / 1000, 3) for k, v in lat.items()},
        "late_sends": out["late"],
        "late_fraction": round(out["late"] / max(out["issued"], 1), 5),
        "max_schedule_lag_ms": out["max_lag_ms"],
        # CPU during the tracking phase, in % of one core (200% = both cores of this machine busy).
        "server_cpu_s": round(server_cpu, 2),
        "wrk_cpu_s": round(wrk_cpu, 2),
        "wall_s": round(wall, 2),
        "server_cpu_pct": round(100 * server_cpu / wall, 1),
        "wrk_cpu_pct": round(100 * wrk_cpu / wall, 1),
        # The whole machine: processes (server, wrk, anything else running), the kernel's
        # interrupt/softirq work (loopback TCP), idle.
        "background_before_pct": background,
        "machine_pct": machine,
        # Process times include the softirq work done on their behalf, so compare with both.
        "other_processes_pct": round(
            machine["user_system"] + machine["irq_softirq"] - 100 * (server_cpu + wrk_cpu) / wall, 1
        ),
        "server_cpu_us_per_request": round(1e6 * server_cpu / max(ok, 1), 1),
    }
    return result


def check(result: dict[str, Any], what: str, problems: list[str]) -> None:
    errs = {k: v for k, v in result["errors"].items() if v and k != "status"}
    if errs:
        problems.append(f"{what}: wrk socket errors {errs}")
    if not result["all_issued_answered_2xx"]:
        problems.append(f"{what}: {result['issued']} tracking requests sent but {result['ok_2xx']} answered 2xx")
    if not result["stored_equals_2xx"]:
        problems.append(f"{what}: {result['stored']} records stored but {result['ok_2xx']} 2xx answers")
    if result["other_processes_pct"] > QUIET_PCT:
        problems.append(f"{what}: other processes used {result['other_processes_pct']}% of a core meanwhile (noisy)")
    if result["mode"] == "paced" and result["late_fraction"] > 0.01:
        problems.append(f"{what}: {100 * result['late_fraction']:.1f}% of paced sends were late (>1 ms)")


def bench_target(
    label: str,
    server: Server,
    kind: str,
    requests_file: Path,
    args: argparse.Namespace,
    *,
    paced: bool,
    problems: list[str],
) -> dict[str, Any]:
    common = {"threads": args.threads, "drain_s": args.drain, "quiet_wait_s": args.quiet_wait}
    print(f"  {label} {kind}: warm-up {args.warmup}s ...", flush=True)
    warm = run_wrk(server, requests_file, mode="max", track_s=args.warmup, connections=args.connections, **common)
    check(warm, f"{label} {kind} warm-up", problems)
    print(f"  {label} {kind}: max rate, {args.duration}s, {args.connections} connections ...", flush=True)
    peak = run_wrk(server, requests_file, mode="max", track_s=args.duration, connections=args.connections, **common)
    check(peak, f"{label} {kind} max", problems)
    print(
        f"    -> {peak['rps']:.0f} req/s (CPU % of a core: server {peak['server_cpu_pct']}, wrk {peak['wrk_cpu_pct']}, "
        f"other processes {peak['other_processes_pct']}, softirq {peak['machine_pct']['irq_softirq']}), "
        f"stored {peak['stored']} = 2xx {peak['ok_2xx']}: {peak['stored_equals_2xx']}",
        flush=True,
    )
    entry: dict[str, Any] = {
        "target": label,
        "server": server.name,
        "started_with": server.command or server.name,
        "workers": server.workers,
        "kind": kind,
        "warmup": warm,
        "max": peak,
        "paced": None,
    }
    if paced:
        rate = peak["rps"] / 2
        print(
            f"  {label} {kind}: paced at {rate:.0f} req/s (half of max), {args.paced_duration}s, "
            f"{args.paced_connections} connections ...",
            flush=True,
        )
        half = run_wrk(
            server,
            requests_file,
            mode="paced",
            track_s=args.paced_duration,
            connections=args.paced_connections,
            rate=rate,
            **common,
        )
        check(half, f"{label} {kind} paced", problems)
        lat = half["latency_ms"]
        print(
            f"    -> achieved {half['rps']:.0f} req/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
            f"late sends {half['late_sends']}",
            flush=True,
        )
        entry["paced"] = half
    entry["stored_total"] = server.count_stored() if server.count_stored else None
    entry["answered_2xx_total"] = warm["ok_2xx"] + peak["ok_2xx"] + (entry["paced"] or {}).get("ok_2xx", 0)
    return entry


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    def version(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    import uvicorn

    facts = machine_facts()
    facts.pop("loadavg_at_start")
    return {**facts, "uvicorn": uvicorn.__version__, "nginx": version(["nginx", "-v"]), "wrk": version(["wrk", "-v"])}


def fs_type(path: Path) -> str:
    best, fstype = "", "?"
    target = str(path.resolve())
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        mount = parts[1]
        if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) > len(best):
            best, fstype = mount, f"{parts[2]} on {parts[0]} ({mount})"
    return fstype


def table(entries: list[dict[str, Any]]) -> str:
    head = (
        f"{'server':<12} {'wk':>2} {'kind':<4} {'max req/s':>10} {'srv CPU':>8} {'wrk CPU':>8} "
        f"{'CPU us/req':>10} | {'paced req/s':>11} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'p99.9 ms':>8} {'late':>5} | {'stored=2xx':>10}"
    )
    rows = [head, "-" * len(head)]
    for e in entries:
        m, p = e["max"], e["paced"]
        paced = (
            f"{p['rps']:>11.0f} {p['latency_ms']['p50']:>7.2f} {p['latency_ms']['p90']:>7.2f} "
            f"{p['latency_ms']['p99']:>7.2f} {p['latency_ms']['p999']:>8.2f} {p['late_sends']:>5}"
            if p
            else f"{'-':>11} {'-':>7} {'-':>7} {'-':>7} {'-':>8} {'-':>5}"
        )
        ok = "n/a" if e["stored_total"] is None else "yes" if e["stored_total"] == e["answered_2xx_total"] else "NO"
        rows.append(
            f"{e['server']:<12} {e['workers']:>2} {e['kind']:<4} {m['rps']:>10.0f} {m['server_cpu_pct']:>7.0f}% "
            f"{m['wrk_cpu_pct']:>7.0f}% {m['server_cpu_us_per_request']:>10.1f} | {paced} | {ok:>10}"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=12, help="seconds of each max-rate run (default 12)")
    parser.add_argument("--paced-duration", type=int, default=10, help="seconds of each paced run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each max run (default 2)")
    parser.add_argument("--drain", type=int, default=2, help="seconds wrk runs on after the tracking traffic")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument(
        "--paced-connections", type=int, default=512, help="wrk connections of the paced runs (default 512)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", default="2,1", help="Plowline --workers values to run (default 2,1)")
    parser.add_argument("--paced-workers", default="2", help="workers values that also get the paced run")
    parser.add_argument("--kinds", default="GET,POST", help="GET, POST or both (default GET,POST)")
    parser.add_argument(
        "--tp2-style",
        choices=("compact", "full"),
        default="compact",
        help="POST events: compact (~3.8 KB body, default) or full JS-tracker fields (~6.2 KB)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=QUIET_WAIT_S,
        help="before each run, wait up to this many seconds for other processes to go quiet",
    )
    parser.add_argument("--no-nginx", action="store_true", help="skip nginx-light")
    parser.add_argument(
        "--bare-asgi",
        action="store_true",
        help="also run bench/bare_asgi.py: uvicorn as the collector runs it with an app that does nothing",
    )
    parser.add_argument("--tmp", type=Path, default=None, help="where data dirs go (default: system temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    parser.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/...)")
    args = parser.parse_args()

    missing = [
        tool for tool in ("wrk", "nginx") if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()
    ]
    if not args.no_nginx and not ECHO_MODULE.exists():
        missing.append(f"nginx echo module ({ECHO_MODULE}, package libnginx-mod-http-echo)")
    if args.no_nginx and "nginx" in missing:
        missing.remove("nginx")
    if missing:
        print(f"missing: {', '.join(missing)}\n{INSTALL_HINT}", file=sys.stderr)
        return 2

    kinds = [k.strip().upper() for k in args.kinds.split(",") if k.strip()]
    workers_list = [int(w) for w in args.workers.split(",") if w.strip()]
    paced_workers = {int(w) for w in args.paced_workers.split(",") if w.strip()}
    run_dir = Path(tempfile.mkdtemp(prefix="plowline-bench-", dir=args.tmp))
    info = machine()
    started = datetime.now(UTC)
    print(f"machine: {info['nproc']} CPUs ({info['cpu_model']}), {info['ram_gib']} GiB, kernel {info['kernel']}")
    print(f"data dirs: {run_dir} [{fs_type(run_dir)}]")
    if fs_type(run_dir).startswith("tmpfs"):
        print(
            "WARNING: the data dirs are on tmpfs, where fsync costs nothing: pass --tmp DIR on a disk", file=sys.stderr
        )
    idle_before = machine_cpu()
    time.sleep(2)
    background = machine_busy_pct(idle_before, machine_cpu())
    print(f"background load before the run: {background['user_system']}% of a core")
    if background["user_system"] > 15:
        print("WARNING: something else is using the CPU; the figures will be low and noisy", file=sys.stderr)

    request_files: dict[str, Path] = {}
    request_stats: dict[str, Any] = {}
    for kind in kinds:
        request_files[kind] = run_dir / f"requests-{kind}.txt"
        count = 4096 if kind == "GET" else 1024
        request_stats[kind] = write_requests(request_files[kind], kind, count, seed=7, style=args.tp2_style)
    print(f"requests: {json.dumps(request_stats)}")

    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    servers: list[Server] = []
    try:
        # Kind by kind, so that each ratio compares runs a minute or two apart, not several.
        for kind in kinds:
            for workers in workers_list:
                data_dir = run_dir / f"plowline-w{workers}-{kind}"
                print(f"plowline --workers {workers}, {kind} (data dir {data_dir})", flush=True)
                server = start_plowline(workers, data_dir, run_dir / f"plowline-w{workers}-{kind}.log")
                servers.append(server)
                entry = bench_target(
                    f"plowline w{workers}",
                    server,
                    kind,
                    request_files[kind],
                    args,
                    paced=workers in paced_workers,
                    problems=problems,
                )
                stop(server.proc)
                servers.remove(server)
                # After a clean shutdown: every 2xx answer of every run has its record in the raw log.
                entry["stored_total"] = server.count_stored()
                if entry["stored_total"] != entry["answered_2xx_total"]:
                    problems.append(
                        f"plowline w{workers} {kind}: {entry['stored_total']} records in the raw log, "
                        f"{entry['answered_2xx_total']} 2xx answers"
                    )
                print(f"  raw log: {entry['stored_total']} records, wrk 2xx answers: {entry['answered_2xx_total']}")
                entries.append(entry)
            if args.bare_asgi:
                workers = max(workers_list)
                print(f"bare ASGI app on uvicorn --workers {workers}, {kind}", flush=True)
                server = start_bare_asgi(workers, run_dir / f"bare-asgi-w{workers}-{kind}.log")
                servers.append(server)
                entry = bench_target(
                    f"bare ASGI w{workers}", server, kind, request_files[kind], args, paced=False, problems=problems
                )
                stop(server.proc)
                servers.remove(server)
                entries.append(entry)
            if not args.no_nginx:
                prefix = run_dir / f"nginx-{kind}"
                print(f"nginx-light worker_processes 2, {kind} (prefix {prefix})", flush=True)
                server = start_nginx(prefix)
                servers.append(server)
                entry = bench_target(
                    "nginx-light", server, kind, request_files[kind], args, paced=True, problems=problems
                )
                stop(server.proc)
                servers.remove(server)
                entry["stored_total"] = server.count_stored()
                if entry["stored_total"] != entry["answered_2xx_total"]:
                    problems.append(
                        f"nginx {kind}: {entry['stored_total']} access-log lines, "
                        f"{entry['answered_2xx_total']} 2xx answers"
                    )
                print(f"  access log: {entry['stored_total']} lines, wrk 2xx answers: {entry['answered_2xx_total']}")
                entries.append(entry)
    finally:
        for server in servers:
            stop(server.proc)
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)

    ratios: dict[str, Any] = {}
    by = {(e["server"], e["workers"], e["kind"]): e for e in entries}
    for kind in kinds:
        nginx = by.get(("nginx-light", 2, kind))
        if nginx is None:
            continue
        for workers in workers_list:
            plow = by.get(("plowline", workers, kind))
            if plow is not None:
                ratios[f"{kind} plowline w{workers} / nginx"] = round(plow["max"]["rps"] / nginx["max"]["rps"], 3)
        bare = next((e for e in entries if e["server"] == "bare ASGI" and e["kind"] == kind), None)
        if bare is not None:
            name = f"{kind} bare ASGI w{bare['workers']} / nginx"
            ratios[name] = round(bare["max"]["rps"] / nginx["max"]["rps"], 3)

    print()
    print(table(entries))
    print()
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}  (target >= 0.5)")
    print(
        "verification: "
        + (
            "every run: records stored == 2xx answers, no socket errors"
            if not problems
            else "PROBLEMS:\n  " + "\n  ".join(problems)
        )
    )

    report = {
        "benchmark": "collector_vs_nginx",
        "date_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "data_dir_filesystem": fs_type(run_dir),
        "background_load_pct_of_core": background,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "requests": request_stats,
        "results": entries,
        "ratios": ratios,
        "problems": problems,
    }
    out = args.out or RESULTS_DIR / f"collector_vs_nginx-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    (out.parent / "collector_vs_nginx-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {out}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
