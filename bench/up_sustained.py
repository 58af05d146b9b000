"""Benchmark: the highest event rate `plowline up` sustains with its backlog flat and nothing lost.

    .venv/bin/python bench/up_sustained.py --rate 2000 [--duration 600]
    .venv/bin/python bench/up_sustained.py --find-max [--start-rate 500] [--step-factor 1.25] [--step-duration 60] [--duration 600]

Each run starts a fresh `plowline up` (default here: --workers 2, so 2 collector workers and 2 enrich
workers; the default loaders, files and duckdb) on a temporary data dir and a free port, with Iglu
Central's schemas from a local directory (--iglu) and no HTTP repository, and sends tp2 POST
batches of 10 JavaScript-tracker events (1 page view, 6 page pings, 2 link clicks, 1 structured
event; ~3.8 KB) at a fixed rate for the duration, paced open-loop over keep-alive connections
(bench/uplib.py). Every --sample-every seconds it samples the backlog as `plowline up`'s status
line computes it (plowline/status.py: the records each consumer group has not committed yet in
the file logs): enrich's lag on the raw stream (records times events per request, so in events) and
each loader's lag on the enriched stream. The total backlog is enrich's lag plus the largest
loader lag, in events.

A run passes ("sustained") when all of these hold:

* flat backlog: over the second half of the run, the Theil-Sen slope of the total backlog (the
  median of the slopes between every two samples) is at most 2% of the input rate (the pipeline
  kept up with at least 98% of it), or the backlog never exceeded 2 seconds of input there
  (batches come and go; nothing accumulated). A robust slope, because DuckDB's checkpoints pause
  its loader for a few seconds: one such spike late in a run tilts a least-squares line enough
  to fail a run whose backlog was flat before and after it (seen at 53 s of a 60 s step), while a
  backlog that keeps growing gives the same slope either way. The largest backlog is printed too;
* the collector kept up: every request answered 200, and no send started more than 1 s after its
  slot in the schedule (sends more than 50 ms behind are counted and printed as "late": on a busy
  machine the collector stalls now and then, and the schedule catches up when it answers again);
* nothing lost: after the sending, once every backlog is 0 (at most --drain-timeout s), the
  warehouse holds exactly the acknowledged events, each once, and there is no bad row.

--find-max runs --step-duration-second runs from --start-rate up by --step-factor until one
fails, then tries the geometric midpoint between the last pass and that failure (--refine times),
then runs the highest passing rate for --duration; if that fails, --final-tries > 1 steps down
by --step-factor and runs --duration again (short steps overestimate: the duckdb loader slows down
as atomic.events grows, see BENCHMARKS.md). CPU use by part of the pipeline, the load
generator's own CPU, the rest of the machine, and `uptime` are printed for every run, and
everything is written as JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import machine_facts
from uplib import IGLU_CENTRAL, CpuMeter, RequestFactory, UpProcess, drive, query, robust_slope, uptime, use_uvloop

from plowline.status import PipelineStatus

RESULTS_DIR = Path(__file__).parent / "results"
FLAT_SLOPE_SHARE = 0.02
FLAT_BACKLOG_S = 2.0
MAX_SEND_LAG_S = 1.0


@dataclass
class Sample:
    t: float  # seconds since the sending started
    enrich_lag_events: int
    loader_lags: dict[str, int]

    @property
    def total(self) -> int:
        return self.enrich_lag_events + max(self.loader_lags.values(), default=0)


@dataclass
class RunResult:
    label: str
    rate: float
    duration_s: float
    started_utc: str
    uptime_before: str
    uptime_after: str = ""
    load: dict[str, Any] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    acknowledged: int = 0
    stored: int = 0
    distinct: int = 0
    bad_rows: int = 0
    drain_s: float | None = None
    slope_events_per_s: float = 0.0
    max_backlog_second_half: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label, "rate_events_per_s": self.rate, "duration_s": self.duration_s, "started_utc": self.started_utc,
            "uptime_before": self.uptime_before, "uptime_after": self.uptime_after, "load": self.load,
            "cpu_pct_of_one_core": self.cpu, "acknowledged_events": self.acknowledged, "stored_events": self.stored,
            "distinct_events": self.distinct, "bad_rows": self.bad_rows, "drain_s": self.drain_s,
            "backlog_slope_events_per_s_second_half": round(self.slope_events_per_s, 1),
            "max_backlog_events_second_half": self.max_backlog_second_half, "passed": self.passed,
            "problems": self.problems,
            "samples": [{"t": round(s.t, 1), "enrich_lag_events": s.enrich_lag_events, **s.loader_lags} for s in self.samples],
        }


def sample(status: PipelineStatus, events_per_request: int, t: float) -> Sample:
    enrich = status.raw.backlog("enrich") * events_per_request if status.raw else 0
    loaders = {name: status.enriched.backlog(name) for name in status.loaders} if status.enriched else {}
    return Sample(t, enrich, loaders)


async def send_and_sample(
    up: UpProcess, factory: RequestFactory, rate: float, duration_s: float, connections: int, every_s: float,
) -> tuple[dict[str, Any], list[Sample]]:
    status = PipelineStatus.from_settings(up.settings())
    samples: list[Sample] = []
    started = time.monotonic()
    done = asyncio.Event()

    async def sampler() -> None:
        while not done.is_set():
            with_lag = await asyncio.to_thread(sample, status, factory.events_per_request, time.monotonic() - started)
            samples.append(with_lag)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), every_s)

    sampling = asyncio.create_task(sampler())
    try:
        load = await drive(up.port, factory, rate / factory.events_per_request, duration_s, connections=connections)
    finally:
        done.set()
        await sampling
    samples.append(await asyncio.to_thread(sample, status, factory.events_per_request, time.monotonic() - started))
    return load.summary(), samples


def run(rate: float, duration_s: float, args: argparse.Namespace, label: str) -> RunResult:
    """One fresh `plowline up`, driven at `rate` events/s for `duration_s`, then drained and counted."""
    result = RunResult(label, rate, duration_s, datetime.now(UTC).isoformat(timespec="seconds"), uptime())
    up = UpProcess(workers=args.workers, enrich_workers=args.enrich_workers, iglu=args.iglu)
    print(f"\n== {label}: {rate:,.0f} events/s for {duration_s:g} s  ({result.started_utc}; {result.uptime_before})",
          flush=True)
    try:
        up.start()
        settings = up.settings()
        factory = RequestFactory(args.events_per_request, f"bench-sustained-{label}")
        meter = CpuMeter(up)
        meter.start()
        result.load, result.samples = asyncio.run(
            send_and_sample(up, factory, rate, duration_s, args.connections, args.sample_every)
        )
        result.cpu = meter.stop()
        result.acknowledged = int(result.load["ok"]) * args.events_per_request
        status = PipelineStatus.from_settings(settings)
        drain_started = time.monotonic()
        while time.monotonic() - drain_started < args.drain_timeout:
            if sample(status, args.events_per_request, 0).total == 0:
                result.drain_s = round(time.monotonic() - drain_started, 1)
                break
            time.sleep(0.5)
        (result.stored, result.distinct), = query(
            settings, f"SELECT count(*), count(DISTINCT event_id) FROM atomic.events WHERE app_id = '{factory.app_id}'"
        )
        (result.bad_rows,), = query(settings, "SELECT count(*) FROM atomic.bad_rows")
    except Exception as exc:
        result.problems.append(f"the run failed: {exc!r}")
    finally:
        code = up.stop()
        result.uptime_after = uptime()
    if code not in (0, None):
        result.problems.append(f"plowline up exited with {code}")
    judge(result, args)
    report(result)
    return result


def judge(result: RunResult, args: argparse.Namespace) -> None:
    if not result.load:
        return
    second_half = [s for s in result.samples if s.t >= result.duration_s / 2]
    result.slope_events_per_s = robust_slope([(s.t, float(s.total)) for s in second_half])
    result.max_backlog_second_half = max((s.total for s in second_half), default=0)
    flat = (result.slope_events_per_s <= FLAT_SLOPE_SHARE * result.rate
            or result.max_backlog_second_half <= FLAT_BACKLOG_S * result.rate)
    if not flat:
        result.problems.append(
            f"backlog not flat: +{result.slope_events_per_s:,.0f} events/s over the second half "
            f"(limit {FLAT_SLOPE_SHARE:.0%} of the rate), up to {result.max_backlog_second_half:,} events"
        )
    sent = int(result.load["sent"])
    if result.load["failed"]:
        result.problems.append(f"{result.load['failed']} requests failed: {result.load['errors']}")
    if result.load["max_send_lag_ms"] > 1000 * MAX_SEND_LAG_S:
        result.problems.append(
            f"sends fell up to {result.load['max_send_lag_ms']:,.0f} ms behind the schedule "
            f"({result.load['late_sends']} of {sent} late): the collector did not keep up"
        )
    if result.drain_s is None:
        result.problems.append(f"the backlog did not drain within {args.drain_timeout:g} s")
    if result.stored != result.acknowledged or result.distinct != result.stored:
        result.problems.append(
            f"{result.acknowledged:,} events acknowledged, {result.stored:,} in the warehouse ({result.distinct:,} distinct)"
        )
    if result.bad_rows:
        result.problems.append(f"{result.bad_rows} bad rows")


def report(result: RunResult) -> None:
    load = result.load
    if load:
        print(f"sent {load['sent']:,} requests ({result.acknowledged:,} events acknowledged), "
              f"{load['achieved_rps']:,} req/s achieved, {load['late_sends']} late (max lag {load['max_send_lag_ms']} ms), "
              f"HTTP p50 {load['http_p50_ms']} ms p99 {load['http_p99_ms']} ms max {load['http_max_ms']} ms")
    if result.samples:
        worst = max(result.samples, key=lambda s: s.total)
        print(f"backlog (events): last {result.samples[-1].total:,}, max {worst.total:,} at {worst.t:.0f} s; "
              f"second half slope {result.slope_events_per_s:+,.1f} events/s, max {result.max_backlog_second_half:,}; "
              f"drained in {result.drain_s} s")
        every = max(1, len(result.samples) // 12)
        print("  t/s: " + "  ".join(f"{s.t:.0f}:{s.total:,}" for s in result.samples[::every]))
    print(f"warehouse: {result.stored:,} events ({result.distinct:,} distinct), bad rows {result.bad_rows}")
    if result.cpu:
        print("CPU (% of one core, sending phase): " + ", ".join(f"{k} {v}" for k, v in result.cpu.items()))
    print(f"uptime after: {result.uptime_after}")
    print("PASS: sustained" if result.passed else "FAIL: " + "; ".join(result.problems), flush=True)


def find_max(args: argparse.Namespace, runs: list[RunResult]) -> float | None:
    """Step the rate up until a run fails, refine between the last pass and the failure; the highest pass."""
    best: float | None = None
    failed: float | None = None
    rate = args.start_rate
    for step in range(args.max_steps):
        result = run(rate, args.step_duration, args, f"step{step + 1}")
        runs.append(result)
        if not result.passed:
            failed = rate
            break
        best = rate
        rate = round(rate * args.step_factor)
    for refine in range(args.refine):
        if best is None or failed is None:
            break
        rate = round(math.sqrt(best * failed))
        if rate in (best, failed):
            break
        result = run(rate, args.step_duration, args, f"refine{refine + 1}")
        runs.append(result)
        if result.passed:
            best = rate
        else:
            failed = rate
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, help="events per second (without --find-max)")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of the (final) run (default 600)")
    parser.add_argument("--find-max", action="store_true", help="step the rate up to find the highest flat rate first")
    parser.add_argument("--start-rate", type=float, default=500.0, help="--find-max: first rate (events/s)")
    parser.add_argument("--step-factor", type=float, default=1.25, help="--find-max: rate multiplier per step")
    parser.add_argument("--step-duration", type=float, default=60.0, help="--find-max: seconds per step")
    parser.add_argument("--max-steps", type=int, default=12, help="--find-max: at most this many steps up")
    parser.add_argument("--refine", type=int, default=1, help="--find-max: bisection steps after the first failure")
    parser.add_argument("--final-tries", type=int, default=1,
                        help="runs of --duration, each --step-factor slower than the last, until one passes (default 1)")
    parser.add_argument("--events-per-request", type=int, default=10, help="events per tp2 POST (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="collector workers of `up` (default 2: 2 enrich workers)")
    parser.add_argument("--enrich-workers", type=int, default=None, help="enrich workers (default: up's choice)")
    parser.add_argument("--connections", type=int, default=256, help="keep-alive connections of the client")
    parser.add_argument("--sample-every", type=float, default=2.0, help="seconds between backlog samples")
    parser.add_argument("--drain-timeout", type=float, default=180.0, help="seconds to wait for the backlog to drain")
    parser.add_argument("--iglu", type=Path, default=IGLU_CENTRAL, help="a local copy of Iglu Central")
    args = parser.parse_args()
    if not args.find_max and not args.rate:
        parser.error("give --rate or --find-max")

    use_uvloop()
    started = datetime.now(UTC)
    machine = machine_facts()
    runs: list[RunResult] = []
    rate: float | None = args.rate
    if args.find_max:
        rate = find_max(args, runs)
        if rate is None:
            print(f"\nno rate from {args.start_rate:,.0f} events/s up was sustained", file=sys.stderr)
    final: RunResult | None = None
    for attempt in range(args.final_tries if rate else 0):
        assert rate is not None
        final = run(rate, args.duration, args, "final" if attempt == 0 else f"final{attempt + 1}")
        runs.append(final)
        if final.passed:
            break
        # Short steps overestimate: the duckdb loader slows down as atomic.events grows. Step down.
        rate = round(rate / args.step_factor)

    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"up_sustained-{started:%Y%m%dT%H%M%SZ}.json").write_text(json.dumps({
        "date_utc": started.isoformat(timespec="seconds"), "command": " ".join(sys.argv), "machine": machine,
        "up_argv": UpProcess(workers=args.workers, enrich_workers=args.enrich_workers, iglu=args.iglu).argv()[3:],
        "events_per_request": args.events_per_request, "runs": [r.as_json() for r in runs],
        "sustained_events_per_s": final.rate if final is not None and final.passed else None,
    }, indent=2))
    print("\n| run | events/s | s | backlog slope 2nd half (events/s) | max backlog 2nd half | drained s | stored = acked | up CPU % | client CPU % | others % | result |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r.label} | {r.rate:,.0f} | {r.duration_s:g} | {r.slope_events_per_s:+,.1f} | {r.max_backlog_second_half:,} | "
              f"{r.drain_s} | {'yes' if r.stored == r.acknowledged and r.acknowledged else 'NO'} | "
              f"{r.cpu.get('up_total_pct', '-')} | {r.cpu.get('bench_process_pct', '-')} | {r.cpu.get('others_pct', '-')} | "
              f"{'pass' if r.passed else 'fail'} |")
    if final is not None:
        print(f"\nsustained for {final.duration_s:g} s: {final.rate:,.0f} events/s: {'yes' if final.passed else 'NO'}")
    return 0 if final is not None and final.passed else 1


if __name__ == "__main__":
    sys.exit(main())
