"""Benchmark: in `plowline up`, the time from the collector's 200 to the event being queryable in DuckDB.

    .venv/bin/python bench/up_latency.py [--rate 1000] [--duration 60] [--events-per-request 1] [--poll-interval 0.05]

Starts `plowline up` as users run it (defaults: 1 collector worker, so 1 enrich worker; the files and
duckdb loaders), on a temporary data dir and a free port, with Iglu Central's schemas from a local
directory (--iglu) and no HTTP repository. Sends tp2 POSTs of the JavaScript tracker's events (page
views, page pings, link clicks, structured events; one event per request by default, as the
tracker's default buffer size of 1 does) at a steady --rate events/s for --duration seconds, paced
as in bench/uplib.py (open loop over keep-alive connections). Each event has an eid this script
chose, and for each the wall-clock time its request's 200 arrived is kept.

Meanwhile a thread asks the warehouse, through the duckdb loader's query socket
(plowline.analytics.query.run_query, as `plowline query` does), every --poll-interval seconds:

    SELECT event_id, epoch_ms(load_tstamp) FROM atomic.events
    WHERE app_id = '<this run>' AND load_tstamp >= <latest load_tstamp seen - 0.1 s>

so a poll returns only the last batches, not the whole table. Two figures per event bound the
true "queryable" moment from both sides:

* upper bound, "seen": the time the first poll that returned the event had its answer, minus the
  time of the 200. It is what a client polling like this experiences; its resolution is the poll
  interval plus a query's duration (both printed): the event became queryable at most that long
  before it was seen.
* lower bound, "load_tstamp": the loader's load_tstamp (taken by the loader, same machine and clock,
  just before its INSERT; millisecond precision) minus the time of the 200. The batch's INSERT and
  COMMIT come after it, so the event becomes queryable a little later than this.

The polling costs the loader process a query every interval (on a thread of its own, sharing the
loader's interpreter); its time is printed, and --poll-interval changes it. After the sending, the
thread keeps polling until every acknowledged event was seen (at most --drain-timeout seconds),
then counts the run's events in the warehouse: every 200 must be there exactly once, with no bad
row (exit 1 otherwise). Prints p50/p95/p99/max of both figures, CPU by part of the pipeline, the
load generator's own CPU, and `uptime` before and after, and writes them as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import machine_facts
from uplib import IGLU_CENTRAL, CpuMeter, RequestFactory, UpProcess, drive, percentile, query, uptime, use_uvloop

from plowline.config import Settings

RESULTS_DIR = Path(__file__).parent / "results"
WATERMARK_MARGIN_MS = 100
MAX_SEND_LAG_S = 1.0


class WarehousePoller(threading.Thread):
    """Polls the warehouse for the run's events; notes for each the first time a poll returned it."""

    def __init__(self, settings: Settings, factory: RequestFactory, interval_s: float) -> None:
        super().__init__(name="warehouse-poller", daemon=True)
        self.settings = settings
        self.factory = factory
        self.interval_s = interval_s
        self.seen: dict[int, tuple[float, float]] = {}  # event number → (time a poll returned it, load_tstamp s)
        self.expected = -1  # set when the sending is over: events acknowledged
        self.deadline = float("inf")
        self.polls = 0
        self.query_s: list[float] = []
        self.rows_returned = 0
        self.cpu_s = 0.0
        self.cpu_while_sending_s: float | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        watermark_ms = 0
        app_id = self.factory.app_id
        try:
            while not (0 <= self.expected <= len(self.seen)) and time.time() < self.deadline:
                if self.expected >= 0 and self.cpu_while_sending_s is None:
                    self.cpu_while_sending_s = time.thread_time()
                started = time.time()
                since = datetime.fromtimestamp(max(watermark_ms - WATERMARK_MARGIN_MS, 0) / 1000, UTC)
                rows = query(self.settings, (
                    "SELECT event_id, epoch_ms(load_tstamp) FROM atomic.events "
                    f"WHERE app_id = '{app_id}' AND load_tstamp >= TIMESTAMP '{since.replace(tzinfo=None).isoformat()}'"
                ))
                answered = time.time()
                self.polls += 1
                self.query_s.append(answered - started)
                self.rows_returned += len(rows)
                for event_id, load_ms in rows:
                    number = self.factory.counter(str(event_id))
                    if number is not None and number not in self.seen:
                        self.seen[number] = (answered, load_ms / 1000)
                    watermark_ms = max(watermark_ms, int(load_ms))
                pause = self.interval_s - (time.time() - started)
                if pause > 0:
                    time.sleep(pause)
        except BaseException as exc:
            self.error = exc
        finally:
            self.cpu_s = time.thread_time()


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(1000 * percentile(values, 50), 1), "p95_ms": round(1000 * percentile(values, 95), 1),
        "p99_ms": round(1000 * percentile(values, 99), 1), "max_ms": round(1000 * max(values), 1),
        "min_ms": round(1000 * min(values), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second (default 1000)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of sending (default 60)")
    parser.add_argument("--events-per-request", type=int, default=1, help="events in each tp2 POST (default 1)")
    parser.add_argument("--poll-interval", type=float, default=0.05, help="seconds between warehouse polls")
    parser.add_argument("--connections", type=int, default=128, help="keep-alive connections of the client")
    parser.add_argument("--workers", type=int, default=1, help="collector workers of `up` (default 1, up's default)")
    parser.add_argument("--enrich-workers", type=int, default=None, help="enrich workers (default: up's choice)")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for the last events")
    parser.add_argument("--iglu", type=Path, default=IGLU_CENTRAL, help="a local copy of Iglu Central")
    args = parser.parse_args()

    use_uvloop()
    machine = machine_facts()
    load_before = uptime()
    started_utc = datetime.now(UTC)
    request_rate = args.rate / args.events_per_request
    requests_total = int(request_rate * args.duration)
    factory = RequestFactory(args.events_per_request, f"bench-latency-{started_utc:%H%M%S}")
    ok_at = [0.0] * (requests_total * args.events_per_request)

    def on_ok(k: int, at: float) -> None:
        first = k * args.events_per_request
        ok_at[first : first + args.events_per_request] = [at] * args.events_per_request

    up = UpProcess(workers=args.workers, enrich_workers=args.enrich_workers, iglu=args.iglu)
    problems: list[str] = []
    try:
        up.start()
        settings = up.settings()
        poller = WarehousePoller(settings, factory, args.poll_interval)
        meter = CpuMeter(up)
        meter.start()
        poller.start()
        load = asyncio.run(drive(up.port, factory, request_rate, args.duration, connections=args.connections, on_ok=on_ok))
        cpu = meter.stop()
        acknowledged = {n for n, at in enumerate(ok_at) if at}
        poller.expected = len(acknowledged)
        poller.deadline = time.time() + args.drain_timeout
        poller.join()
        if poller.error is not None:
            raise poller.error
        (total, distinct), = query(settings, f"SELECT count(*), count(DISTINCT event_id) FROM atomic.events WHERE app_id = '{factory.app_id}'")
        (bad_rows,), = query(settings, "SELECT count(*) FROM atomic.bad_rows")
    finally:
        code = up.stop()
    load_after = uptime()

    seen_lat = [poller.seen[n][0] - ok_at[n] for n in acknowledged if n in poller.seen]
    stamp_lat = [poller.seen[n][1] - ok_at[n] for n in acknowledged if n in poller.seen]
    missing = len(acknowledged - poller.seen.keys())
    if load.failed:
        problems.append(f"{load.failed} requests failed: {load.errors}")
    if missing:
        problems.append(f"{missing} acknowledged events never became queryable within the drain timeout")
    if total != len(acknowledged) or distinct != total:
        problems.append(f"warehouse has {total} rows ({distinct} distinct event ids) for {len(acknowledged)} acknowledged events")
    if bad_rows:
        problems.append(f"{bad_rows} bad rows")
    if load.max_lag_s > MAX_SEND_LAG_S:
        problems.append(f"sends fell up to {1000 * load.max_lag_s:,.0f} ms behind the schedule: the rate was not held")
    if code not in (0, None):
        problems.append(f"plowline up exited with {code}")

    poller_cpu = poller.cpu_s if poller.cpu_while_sending_s is None else poller.cpu_while_sending_s
    generator_pct = round(cpu["bench_process_pct"] - 100 * poller_cpu / max(load.wall_s, 1e-9), 1)
    result: dict[str, Any] = {
        "date_utc": started_utc.isoformat(timespec="seconds"), "machine": machine,
        "uptime_before": load_before, "uptime_after": load_after,
        "command": " ".join(sys.argv), "up_argv": up.argv()[1:],
        "rate_events_per_s": args.rate, "events_per_request": args.events_per_request, "duration_s": args.duration,
        "load": load.summary(), "events_acknowledged": len(acknowledged), "events_queryable": len(poller.seen),
        "warehouse_rows": total, "warehouse_distinct": distinct, "bad_rows": bad_rows,
        "latency_seen": summarize(seen_lat) if seen_lat else None,
        "latency_load_tstamp": summarize(stamp_lat) if stamp_lat else None,
        "polls": poller.polls, "poll_interval_s": args.poll_interval,
        "query_ms_mean": round(1000 * sum(poller.query_s) / max(len(poller.query_s), 1), 2),
        "query_ms_p99": round(1000 * percentile(poller.query_s, 99), 2) if poller.query_s else None,
        "rows_per_poll_mean": round(poller.rows_returned / max(poller.polls, 1), 1),
        "poller_thread_cpu_s": round(poller.cpu_s, 2),
        "cpu_pct_of_one_core": {**cpu, "load_generator_pct": generator_pct},
        "problems": problems,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"up_latency-{started_utc:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps(result, indent=2))

    print(f"{started_utc:%Y-%m-%d %H:%M:%S} UTC  plowline {' '.join(up.argv()[3:])}")
    print(f"uptime before: {load_before}\nuptime after:  {load_after}")
    print(f"sent {args.rate:,.0f} events/s for {args.duration:g} s, {args.events_per_request} per POST, "
          f"{args.connections} connections: {load.ok:,} of {load.sent:,} requests answered 200, "
          f"{load.late} late sends (max lag {1000 * load.max_lag_s:.0f} ms)")
    print(f"HTTP answer p50 {result['load']['http_p50_ms']} ms, p99 {result['load']['http_p99_ms']} ms")
    print(f"events acknowledged {len(acknowledged):,}; queryable {len(poller.seen):,}; in the warehouse "
          f"{total:,} ({distinct:,} distinct); bad rows {bad_rows}")
    print("| 200 → queryable | p50 ms | p95 ms | p99 ms | max ms | min ms |")
    print("|---|---|---|---|---|---|")
    for name, values in (("seen by a poll (upper bound)", seen_lat), ("load_tstamp (lower bound)", stamp_lat)):
        if values:
            s = summarize(values)
            print(f"| {name} | {s['p50_ms']} | {s['p95_ms']} | {s['p99_ms']} | {s['max_ms']} | {s['min_ms']} |")
    print(f"polls: {poller.polls} every {args.poll_interval:g} s, query {result['query_ms_mean']} ms mean "
          f"({result['query_ms_p99']} ms p99), {result['rows_per_poll_mean']} rows per poll; "
          f"poller thread CPU {poller.cpu_s:.1f} s")
    print("CPU (% of one core, sending phase): " + ", ".join(f"{k} {v}" for k, v in result["cpu_pct_of_one_core"].items()))
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
