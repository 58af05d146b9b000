"""Benchmark: rows/s of the embedded loaders (files, parquet, duckdb) on the same realistic enriched events.

Generates N enriched events with the generator of bench/postgres_loader.py (a web tracker's mix of
page views, pings, structured, self-describing and transaction events, with contexts and derived
contexts), then for each loader, in a fresh data dir per round: `Loader.write` in batches of
--batch-size (storage.batch_size, default 1000) until every event is stored, timed from the first
write to the last (opening and migrations not timed), then one redelivery of everything (every
event is skipped as a duplicate). Each write returns only once its rows are durable, as in the
pipeline. Checks (exit 1 on failure): every loader stores exactly N events, and N again after the
redelivery. Loaders alternate in each round since the machine may be shared; medians reported.

    .venv/bin/python bench/loaders.py [--events 100000] [--batch-size 1000] [--rounds 3] [--loaders files,parquet,duckdb]

PostgreSQL has its own script beside `psql \\copy`: bench/postgres_loader.py.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.dataset as ds

from plowline.config import Settings
from plowline.storage import open_loader

sys.path.insert(0, str(Path(__file__).parent))
from postgres_loader import generate  # a sibling script, not a package

RESULTS_DIR = Path(__file__).parent / "results"


async def load(settings: Settings, name: str, lines: list[bytes], batch_size: int) -> tuple[float, float]:
    """Seconds to load `lines`, then seconds to load them all again (every one a duplicate)."""
    loader = open_loader(name, settings, "enriched")
    try:
        started = time.perf_counter()
        for start in range(0, len(lines), batch_size):
            await loader.write(lines[start : start + batch_size])
        first = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, len(lines), batch_size):
            await loader.write(lines[start : start + batch_size])
        again = time.perf_counter() - started
    finally:
        await loader.close()
    return first, again


def stored(name: str, data_dir: Path) -> int:
    """Events the loader stored, counted by reading its output back."""
    if name == "files":
        count = 0
        for path in (data_dir / "enriched").rglob("*.tsv.gz"):
            with gzip.open(path, "rb") as stream:
                count += sum(1 for _ in stream)
        return count
    if name == "parquet":
        return int(ds.dataset(data_dir / "lake" / "events", format="parquet", partitioning="hive").count_rows())
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM atomic.events").fetchone()
        return int(row[0]) if row else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=Settings().storage.batch_size)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loaders", default="files,parquet,duckdb")
    args = parser.parse_args()
    names = [name.strip() for name in args.loaders.split(",") if name.strip()]

    lines = generate(args.events)
    size_mb = sum(map(len, lines)) / 1e6
    seconds: dict[str, list[float]] = {name: [] for name in names}
    again: dict[str, list[float]] = {name: [] for name in names}
    problems: list[str] = []
    for round_number in range(args.rounds):
        order = names if round_number % 2 == 0 else list(reversed(names))
        for name in order:
            data_dir = Path(tempfile.mkdtemp(prefix=f"plowline-bench-{name}-"))
            try:
                settings = Settings.model_validate({"data_dir": str(data_dir), "storage": {"batch_size": args.batch_size}})
                first, second = asyncio.run(load(settings, name, lines, args.batch_size))
                seconds[name].append(first)
                again[name].append(second)
                count = stored(name, data_dir)
                if count != len(lines):
                    problems.append(f"{name}: stored {count} events, expected {len(lines)}")
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)

    print(f"events: {len(lines):,} ({size_mb:.0f} MB of TSV), batch size {args.batch_size}, "
          f"median of {args.rounds} rounds")
    print("| loader | rows/s | rounds | redelivery rows/s (all duplicates) |")
    print("|---|---|---|---|")
    figures: dict[str, dict[str, float]] = {}
    for name in names:
        rate = len(lines) / statistics.median(seconds[name])
        redelivery = len(lines) / statistics.median(again[name])
        rounds = ", ".join(f"{len(lines) / s:,.0f}" for s in seconds[name])
        print(f"| {name} | **{rate:,.0f}** | {rounds} | {redelivery:,.0f} |")
        figures[name] = {"rows_per_s": rate, "redelivery_rows_per_s": redelivery}
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"loaders-{stamp}.json").write_text(json.dumps({
        "date_utc": stamp, "events": len(lines), "batch_size": args.batch_size, "rounds": args.rounds,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "figures": figures, "problems": problems,
    }, indent=2))
    for problem in problems:
        print(f"CHECK FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
