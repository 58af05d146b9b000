"""Benchmark: the duckdb loader's rows/s as atomic.events grows, per checkpoint threshold.

bench/loaders.py loads 100,000 events into a fresh warehouse; a long-running `plowline up` loads
into one that keeps growing, where each write also probes and extends the primary-key index and
each checkpoint rewrites it. This script loads --rows events (distinct event ids, the realistic mix
of bench/postgres_loader.py) through `DuckDBLoader.write` in batches of --batch-size and prints
the rate of every 100,000 rows, once per --thresholds value (storage.duckdb.checkpoint_threshold_mb;
16 is DuckDB's own default). Checks (exit 1 on failure): every row is stored once.

    .venv/bin/python bench/duckdb_growth.py [--rows 1000000] [--batch-size 1000] [--thresholds 16,256]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb

from plowline.storage.duckdb import DuckDBLoader

sys.path.insert(0, str(Path(__file__).parent))
from postgres_loader import generate  # a sibling script, not a package

_EVENT_ID = 6  # the TSV column of event_id
_STEP = 100_000


def batches(rows: int, batch_size: int) -> list[list[bytes]]:
    """`rows` realistic events in batches, each with a fresh event id (so none is a duplicate)."""
    template = generate(20_000)
    out = []
    for start in range(0, rows, batch_size):
        batch = []
        for offset in range(start, min(start + batch_size, rows)):
            columns = template[offset % len(template)].split(b"\t")
            columns[_EVENT_ID] = str(uuid.uuid4()).encode()
            batch.append(b"\t".join(columns))
        out.append(batch)
    return out


async def load(path: Path, threshold_mb: int, work: list[list[bytes]]) -> list[float]:
    """Rows/s of each consecutive 100,000 rows."""
    loader = DuckDBLoader(path, "enriched", serve_queries=False, checkpoint_threshold_mb=threshold_mb)
    rates: list[float] = []
    done, mark, mark_at = 0, time.perf_counter(), _STEP
    try:
        for batch in work:
            await loader.write(batch)
            done += len(batch)
            if done >= mark_at:
                now = time.perf_counter()
                rates.append(_STEP / (now - mark))
                print(f"  {threshold_mb:>5} MiB  {done:>10,} rows  {rates[-1]:>8,.0f} rows/s", flush=True)
                mark, mark_at = now, mark_at + _STEP
    finally:
        await loader.close()
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--thresholds", default="16,256", help="checkpoint thresholds in MiB, comma-separated")
    args = parser.parse_args()
    work = batches(args.rows, args.batch_size)
    failed = False
    for threshold in (int(text) for text in args.thresholds.split(",")):
        with tempfile.TemporaryDirectory(prefix="plowline-bench-duckdb-") as tmp:
            path = Path(tmp) / "warehouse.duckdb"
            rates = asyncio.run(load(path, threshold, work))
            with duckdb.connect(str(path), read_only=True) as con:
                row = con.execute("SELECT count(*), count(DISTINCT event_id) FROM atomic.events").fetchone()
            stored = row[0] if row is not None else 0
            if row is None or row[0] != args.rows or row[1] != args.rows:
                print(f"FAILED: {stored} rows stored, {args.rows} expected", file=sys.stderr)
                failed = True
            if rates:
                print(f"threshold {threshold} MiB: first 100k {rates[0]:,.0f}, last 100k {rates[-1]:,.0f} rows/s, "
                      f"{stored:,} rows stored", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
